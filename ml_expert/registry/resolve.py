"""The one package resolver: what a user typed -> a package.

NAME (the production version of that registry model), NAME@production / NAME@previous / NAME@v3,
production / previous (when the registry holds one model; the model of an old, unnamed registry
too), VERSION (v3), RUN_ID, or a run or package folder.

`predict`, `serve`, `drift` and the MCP tools all call :func:`resolve_package`, so a name that
works for one works for all. Light (standard library only).
"""

from __future__ import annotations

from pathlib import Path

from ml_expert.errors import UsageError
from ml_expert.registry.store import ALIASES, MODEL_NAME_RE, VERSION_RE, Registry, RegistryError


def resolve_package(model: str, workspace: str | Path | None = None) -> tuple[Path, str]:
    """(package directory, label). Registry names first, then a run id, a run or package folder.

    The label is the registry version (`v3`) or `path:<run id or folder name>`.
    """
    from ml_expert.workspace import run_dir, workspace_path

    ws = workspace_path(workspace)
    released = _released(model, ws)
    if released is not None:
        return released
    path = Path(model).expanduser()
    if path.is_dir() and (path / "manifest.json").exists():
        candidate = path
    elif path.is_dir() and (path / "run.json").exists():
        candidate = path / "deployment"
    else:
        candidate = run_dir(ws, model) / "deployment"
    if not (candidate / "manifest.json").is_file():
        raise UsageError(
            f"{model}: no deployment package found (looked for {candidate}/manifest.json); give a "
            f"registry version or alias ({', '.join(ALIASES)}), a run id or a package folder"
        )
    return candidate, f"path:{candidate.name if candidate.name != 'deployment' else candidate.parent.name}"


def _released(model: str, ws: Path) -> tuple[Path, str] | None:
    """(package, version) when `model` names a registry version; None when it names no release."""
    name, sep, alias = model.partition("@")
    if VERSION_RE.fullmatch(model):
        registry = Registry(ws)
        return registry.path(registry.resolve(model)), model
    known = Registry(ws).model_names()
    if model in ALIASES:
        if len(known) > 1:
            names = ", ".join(n or "(unnamed)" for n in known)
            raise RegistryError(
                f"this registry holds several models ({names}): say which, as NAME (its production) "
                f"or NAME@{model}"
            )
        name, alias = (known[0] if known else None), model
    elif sep or (MODEL_NAME_RE.fullmatch(model) and model in known):
        if name not in known:
            raise UsageError(
                f"no model named {name!r} in the registry (it has: {', '.join(map(str, known)) or 'none'})"
            )
        alias = alias or "production"
    else:
        return None
    registry = Registry(ws, model=name)
    version = registry.resolve(alias)
    return registry.path(version), version
