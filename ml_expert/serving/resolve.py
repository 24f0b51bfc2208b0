"""Find a deployment package from what a user typed: a registry alias or version, or a path/run id."""

from __future__ import annotations

from pathlib import Path

from ml_expert.errors import UsageError
from ml_expert.registry import ALIASES, VERSION_RE, Registry


def resolve_package(model: str, workspace: str | Path | None) -> tuple[Path, str]:
    """(package directory, version label). Registry names first, then paths and run ids."""
    from ml_expert.predicting import resolve_deployment
    from ml_expert.workspace import workspace_path

    if model in ALIASES or VERSION_RE.fullmatch(model):
        registry = Registry(workspace_path(workspace))
        version = registry.resolve(model)
        return registry.path(version), version
    path = resolve_deployment(model, workspace)
    if not path.is_dir():
        raise UsageError(f"{model}: not a deployment package")
    return path, f"path:{path.name if path.name != 'deployment' else path.parent.name}"
