"""The model registry: released versions, the `production` / `previous` aliases, an audit log."""

from ml_expert.registry.store import ALIASES, Registry, RegistryError, comparable, validate_name

__all__ = ["ALIASES", "Registry", "RegistryError", "comparable", "validate_name"]
