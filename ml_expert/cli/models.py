"""`models list | show | promote | rollback`: the registry's released versions and aliases."""

from __future__ import annotations

from typing import Annotated

import typer

from ml_expert.cli.common import JsonOpt, WorkspaceOpt, emit_json, handles_errors, stderr_console

app = typer.Typer(
    help="Released model versions: list, show, promote, rollback (aliases production/previous).",
    no_args_is_help=True,
)


ModelNameOpt = Annotated[
    str | None,
    typer.Option(
        "--model-name",
        "-m",
        help="The registry model (default: the only one; say which when there are several).",
    ),
]


def _registry(workspace: str | None, model: str | None = None, *, version: str | None = None):
    """The registry object for one model: the one named, else the version's, else the only one."""
    from ml_expert.registry import Registry, RegistryError
    from ml_expert.registry.store import VERSION_RE
    from ml_expert.workspace import workspace_path

    ws = workspace_path(workspace)
    if model is not None:
        return Registry(ws, model=model)
    every = Registry(ws)
    if version is not None and VERSION_RE.fullmatch(version):
        return Registry(ws, model=every.record(version).model_name)
    names = every.model_names()
    if len(names) > 1:
        listed = ", ".join(n or "(unnamed)" for n in names)
        raise RegistryError(f"this registry holds several models ({listed}): give --model-name NAME")
    return Registry(ws, model=names[0]) if names else every


@app.command("list")
@handles_errors()
def models_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Every registered version grouped by model name, oldest first, with its aliases and test score."""
    from ml_expert.registry import Registry
    from ml_expert.workspace import workspace_path

    registry = Registry(workspace_path(workspace))
    records = registry.records(every_model=True)
    models = [
        {
            "name": name,
            "aliases": Registry(registry.root.parent, model=name).aliases(),
            "versions": [v.view() for v in records if v.model_name == name],
        }
        for name in registry.model_names()
    ]
    if as_json:
        emit_json({"ok": True, "models": models, "versions": [v.view() for v in records]})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"models in {registry.root}")
    for column in ("name", "version", "aliases", "model", "test score", "run", "registered"):
        table.add_column(column)
    for v in sorted(records, key=lambda v: (v.model_name or "", int(v.version[1:]))):
        table.add_row(
            v.model_name or "(unnamed)",
            v.version,
            ", ".join(v.aliases),
            str(v.model),
            f"{v.primary_metric} {v.test_score:.4f}" if v.test_score is not None else "-",
            str(v.run_id),
            str(v.registered),
        )
    Console().print(table)


@app.command("show")
@handles_errors(json_errors=True)
def models_show(
    name: Annotated[str, typer.Argument(help="Version (v3) or alias (production, previous).")] = "production",
    model_name: ModelNameOpt = None,
    workspace: WorkspaceOpt = None,
    audit: Annotated[bool, typer.Option("--audit", help="Also print the audit log.")] = False,
) -> None:
    """One version's metadata as JSON (metrics, data fingerprint, run, who registered it)."""
    registry = _registry(workspace, model_name, version=name)
    info = registry.show(name)
    if audit:
        info["audit"] = registry.audit()
    emit_json(info)


@app.command("promote")
@handles_errors()
def models_promote(
    version: Annotated[str, typer.Argument(help="Version to make production of its model (v3).")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make VERSION production of its model; that model's production becomes previous. Audited."""
    _report_aliases(_registry(workspace, version=version).promote(version), as_json)


@app.command("rollback")
@handles_errors()
def models_rollback(
    model_name: ModelNameOpt = None, workspace: WorkspaceOpt = None, as_json: JsonOpt = False
) -> None:
    """Point a model's production back at its previous (they swap: a second rollback undoes it). Audited."""
    _report_aliases(_registry(workspace, model_name).rollback(), as_json)


def _report_aliases(aliases: dict[str, str], as_json: bool) -> None:
    if as_json:
        emit_json({"ok": True, "aliases": aliases})
    else:
        stderr_console().print(", ".join(f"{k} -> {v}" for k, v in aliases.items()))
