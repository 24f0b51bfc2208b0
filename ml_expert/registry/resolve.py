"""The one package resolver: what a user typed (production | VERSION | RUN_ID | path) -> a package.

`predict`, `serve`, `drift` and the MCP tools all call :func:`resolve_package`, so a name that
works for one works for all. Light (standard library only).
"""

from __future__ import annotations

from pathlib import Path

from ml_expert.errors import UsageError
from ml_expert.registry.store import ALIASES, VERSION_RE, Registry


def resolve_package(model: str, workspace: str | Path | None = None) -> tuple[Path, str]:
    """(package directory, label). Registry names first, then a run id, a run or package folder.

    The label is the registry version (`v3`) or `path:<run id or folder name>`.
    """
    from ml_expert.workspace import run_dir, workspace_path

    ws = workspace_path(workspace)
    if model in ALIASES or VERSION_RE.fullmatch(model):
        registry = Registry(ws)
        version = registry.resolve(model)
        return registry.path(version), version
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
