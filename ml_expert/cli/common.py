"""What every command shares: the common options, JSON output and the one error path."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import typer

from ml_expert.config import field_help
from ml_expert.errors import MLExpertError

F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOpt = Annotated[str | None, typer.Option("--workspace", "-w", help=field_help("workspace"))]
JSON_HELP = "Print exactly one JSON object on stdout; logs go to stderr."
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
MemoryOpt = Annotated[str | None, typer.Option("--memory", help=field_help("memory"))]

# Fields an error report carries besides the message (a run's id and folder, once they are known).
_error_details: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "error_details", default=None
)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def error_details(**fields: Any) -> None:
    """Name what the current command works on, so its error report (with --json) says it too."""
    _error_details.set({**(_error_details.get() or {}), **fields})


def report_error(exc: MLExpertError, as_json: bool) -> typer.Exit:
    """The one error path: one message (or one JSON object), and the documented exit code."""
    if as_json:
        emit_json({"ok": False, "error": exc.message, "error_kind": exc.kind, **(_error_details.get() or {})})
    else:
        stderr_console().print(f"[bold red]error[/] ({exc.kind}): {exc.message}", highlight=False)
    return typer.Exit(exc.exit_code)


def handles_errors(json_errors: bool | None = None) -> Callable[[F], F]:
    """Decorate a command so an MLExpertError ends it through :func:`report_error`.

    The error comes as JSON when the command was called with --json (or always/never when
    `json_errors` is True/False: a command whose output is always JSON, or never).
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            token = _error_details.set(None)
            try:
                return fn(*args, **kwargs)
            except MLExpertError as exc:
                as_json = bool(kwargs.get("as_json")) if json_errors is None else json_errors
                raise report_error(exc, as_json) from None
            finally:
                _error_details.reset(token)

        return command  # type: ignore[return-value]

    return wrap


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Route fd 1 to stderr so nothing a library prints can corrupt the one JSON object."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def library_output_to(log_file: Path) -> Iterator[TextIO]:
    """Send what libraries write to the process's stderr (TensorFlow's retracing warnings and C++
    converter logs, Python warnings) to `log_file`; yield a stream on the terminal's stderr for
    ml-expert's own progress, so a person reads the phases, not a wall of library warnings."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.dup(2)
    with open(log_file, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        with os.fdopen(os.dup(terminal), "w", buffering=1) as stream:
            yield stream
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.close(terminal)


def open_store(memory: str | None, workspace: str | None):
    from ml_expert.errors import UsageError
    from ml_expert.memory import MemoryUnavailable, open_memory
    from ml_expert.workspace import workspace_path

    try:
        return open_memory(memory, workspace_path(workspace))
    except (MemoryUnavailable, ValueError) as exc:
        raise UsageError(str(exc)) from exc
