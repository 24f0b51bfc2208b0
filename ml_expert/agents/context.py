"""What every agent node needs: its run directory, the findings recorder and a progress sink."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from langgraph.config import get_stream_writer

from ml_expert.config import RunConfig
from ml_expert.memory import FindingsRecorder, MemoryStore, MemoryUnavailable, open_memory
from ml_expert.runs import RunFile

log = logging.getLogger("ml_expert.agents")
_STORES: dict[tuple[str | None, str], MemoryStore | None] = {}


def memory_for(config: RunConfig) -> MemoryStore | None:
    """One store per (url, workspace) per process; an unreachable Redis degrades to files only."""
    key = (config.memory, config.workspace)
    if key not in _STORES:
        try:
            _STORES[key] = open_memory(config.memory, Path(config.workspace))
        except MemoryUnavailable as exc:
            log.warning("memory backend unavailable, findings kept as files only: %s", exc)
            _STORES[key] = None
    return _STORES[key]


class AgentContext:
    def __init__(self, state: dict[str, Any], agent: str, phase: str) -> None:
        self.state = state
        self.agent = agent
        self.phase = phase
        self.config = RunConfig.of(state)
        self.run_id: str = state["run_id"]
        self.run_dir = Path(state["run_dir"])
        self.recorder = FindingsRecorder(memory_for(self.config), self.run_dir, self.run_id)
        self._writer = get_stream_writer()
        self.decisions: list[dict[str, str]] = []

    def emit(self, event: str, **fields: Any) -> None:
        try:
            self._writer({"event": event, "phase": self.phase, "agent": self.agent, **fields})
        except Exception:  # progress must never break a run
            log.debug("progress writer failed", exc_info=True)

    def step(self, message: str) -> None:
        self.emit("step", message=message)

    def decide(self, decision: str, reason: str) -> None:
        """Every decision goes to the finding, the run manifest and the report, with its reason."""
        entry = {"phase": self.phase, "agent": self.agent, "decision": decision, "reason": reason}
        self.decisions.append(entry)
        RunFile(self.run_dir).record_decision(entry)

    def record(self, key: str, value: dict[str, Any]) -> None:
        self.recorder.record(key, {**value, "decisions": self.decisions} if self.decisions else value)

    def start(self) -> None:
        RunFile(self.run_dir).enter_phase(self.phase)
        self.emit("phase", status="started")

    def done(self, summary: str) -> None:
        self.emit("phase", status="done", summary=summary)
