"""Rich progress for a person at a terminal: phases, steps, an epoch bar, gate verdicts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PHASE_TITLES = {
    "data_preparation": "1/5 data preparation (ml-developer)",
    "model_selection": "2/5 model selection (researcher)",
    "training": "3/5 training (ml-developer)",
    "validation": "4/5 validation (tester)",
    "deployment": "5/5 deployment (ml-developer)",
}


class RichProgress:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.phases = self.progress.add_task("phases", total=5)
        self.epochs: Any = None
        self.tasks: Any = None

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        out = self.progress.console
        if kind == "phase" and event.get("status") == "started":
            out.print(f"[bold cyan]▶ {PHASE_TITLES.get(event['phase'], event['phase'])}[/]")
            self.progress.update(self.phases, description=PHASE_TITLES.get(event["phase"], event["phase"]))
        elif kind == "phase" and event.get("status") == "done":
            out.print(f"  [green]✓[/] {event.get('summary', '')}")
            self.progress.advance(self.phases)
            if self.epochs is not None:
                self.progress.remove_task(self.epochs)
                self.epochs = None
            if self.tasks is not None:
                self.progress.remove_task(self.tasks)
                self.tasks = None
        elif kind == "step":
            out.print(f"  · {event['message']}")
        elif kind == "epoch":
            if self.epochs is None:
                self.epochs = self.progress.add_task("epochs", total=event["total"])
            logs = event.get("logs", {})
            loss = logs.get("loss", float("nan"))
            val = logs.get("val_loss", float("nan"))
            self.progress.update(
                self.epochs, completed=event["epoch"], description=f"epoch loss {loss:.4f} val {val:.4f}"
            )
        elif kind == "tasks":  # fits running as Ray tasks (--ray)
            if self.tasks is None:
                self.tasks = self.progress.add_task("tasks", total=None)
            nodes = ", ".join(f"{node}: {count}" for node, count in event.get("per_node", {}).items())
            self.progress.update(
                self.tasks,
                completed=event["done"],
                description=f"Ray tasks: {event['in_flight']} in flight; done per node {nodes}",
            )
        elif kind == "gate":
            if event["passed"]:
                out.print(f"  [green]gate {event['gate']}: passed[/]")
            else:
                out.print(f"  [red]gate {event['gate']}: refused[/] — " + "; ".join(event.get("failed", [])))
        elif kind == "export":
            mark = "[green]✓[/]" if event.get("passed") else "[red]✗[/]"
            out.print(f"  {mark} export {event['format']} reloaded and compared")
