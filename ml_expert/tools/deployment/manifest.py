"""A package's manifest.json as a model, for the readers outside the package (the registry, the
server, drift): `format` and `files` (name -> SHA-256) first, then the metadata write_package
copied in. Light (pydantic only): the registry and `ml-expert drift` read it without the ML stack.

Keys a reader does not know are kept (`extra="allow"`): the metadata is open (write_package copies
what the deployment gives it), and an older reader must load a newer package. A manifest without
`files` or not JSON is refused, the file named (the format is the loader's to check). The package's own
inference.py checks the manifest again with the standard library only (it ships without
ml-expert), so it cannot use this model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ml_expert.errors import IntegrityError, first_problem

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "ml-expert-manifest/1"  # the runtime's inference.py states it too (it ships alone)


class PackageManifest(BaseModel):
    """manifest.json: what a package holds and what made it."""

    model_config = ConfigDict(extra="allow")

    format: str | None = None  # checked by the loader (ModelInference), which refuses another format
    files: dict[str, str]
    run_id: str | None = None
    model: str | None = None
    created: str | None = None
    metrics: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None

    @classmethod
    def read(cls, package: str | Path) -> PackageManifest:
        """The package folder's manifest; a missing or damaged one is refused, the file named."""
        path = Path(package) / MANIFEST
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise IntegrityError(f"{path}: manifest is missing") from None
        except ValidationError as exc:
            raise IntegrityError(f"{path}: not a package manifest ({first_problem(exc)})") from None
