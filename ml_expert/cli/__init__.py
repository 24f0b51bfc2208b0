"""`ml-expert`: the command line. Thin: parses, calls the public API, prints.

One module per command group (run, memory, models, serving, agents); every command ends an
error through the one path in :mod:`ml_expert.cli.common`. Heavy libraries (TensorFlow, Keras,
scikit-learn, LangGraph) are imported only inside the commands that train or predict, so
`--help`, `status` and `memory` start fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ml_expert import __version__
from ml_expert.cli import agents, memory, models, run, serving, setup
from ml_expert.errors import EXIT_DATA, EXIT_USAGE, MLExpertError

EXIT_CODES = """Exit codes: 0 success, 2 usage error, 3 data error, 4 training failure, 5 a gate refused."""

app = typer.Typer(
    name="ml-expert",
    help="Dataset in, validated and deployable model out.\n\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ml-expert {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Dataset in, validated and deployable model out."""


run.register(app)
app.add_typer(memory.app, name="memory")
app.add_typer(models.app, name="models")
serving.register(app)
agents.register(app)
app.add_typer(setup.app, name="setup")


def main() -> None:
    try:
        app()
    except MLExpertError as exc:  # pragma: no cover - every command reports its own
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)


__all__ = ["app", "main", "EXIT_USAGE", "EXIT_DATA"]
