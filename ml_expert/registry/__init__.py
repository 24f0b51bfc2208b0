"""The model registry: released versions, the `production` / `previous` aliases, an audit log."""

from ml_expert.registry.resolve import resolve_package
from ml_expert.registry.store import (
    ALIASES,
    VERSION_RE,
    Registry,
    RegistryError,
    ReleaseRefused,
    candidate_record,
    comparable,
    not_worse_than,
    validate_name,
)

__all__ = [
    "ALIASES",
    "VERSION_RE",
    "Registry",
    "RegistryError",
    "ReleaseRefused",
    "candidate_record",
    "comparable",
    "not_worse_than",
    "resolve_package",
    "validate_name",
]
