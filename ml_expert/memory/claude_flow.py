"""Mirror findings into claude-flow's memory through its CLI, and trust a write only once read back.

claude-flow (also published as ruflo) keeps its memory in files whose layout changes between
versions, so this bridge never touches them: it calls the CLI, the stable surface,

    claude-flow memory store -k KEY --value JSON -n ml-expert
    claude-flow memory retrieve -k KEY -n ml-expert --format json

and compares the entry's `content` with what it stored. A claude-flow agent reads a finding with
the same `memory retrieve` call (KEY is `<run_id>/<key>`, e.g. `20260101-.../metrics`).

Enabled per run by the option `claude_flow_sync` (CLI `--claude-flow-sync`) or the environment
variable `ML_EXPERT_CLAUDE_FLOW_SYNC=1`; the executable is `ML_EXPERT_CLAUDE_FLOW_BIN` or
`claude-flow` on PATH. A failure (missing CLI, error exit, timeout, a read-back that differs) is
a warning recorded in run.json (`warnings`, `claude_flow.failed`), never a failed run.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

logger = logging.getLogger("ml_expert.memory")

NAMESPACE = "ml-expert"
ENV_SYNC = "ML_EXPERT_CLAUDE_FLOW_SYNC"
ENV_BIN = "ML_EXPERT_CLAUDE_FLOW_BIN"
ENV_TIMEOUT = "ML_EXPERT_CLAUDE_FLOW_TIMEOUT"


class ClaudeFlowError(RuntimeError):
    """The claude-flow CLI is missing, failed, or did not give back what was stored."""


def sync_enabled(options: dict[str, Any] | None = None) -> bool:
    if (options or {}).get("claude_flow_sync"):
        return True
    return os.environ.get(ENV_SYNC, "").strip().lower() in ("1", "true", "yes", "on")


def _parse_entry(stdout: str) -> dict[str, Any]:
    """The JSON entry `memory retrieve --format json` prints (info lines before it are skipped)."""
    text = stdout.strip()
    start = text.find("{")
    if start < 0:
        raise ClaudeFlowError(f"retrieve printed no JSON object: {text[:200]!r}")
    try:
        entry = json.loads(text[start:])
    except json.JSONDecodeError as exc:
        raise ClaudeFlowError(
            f"retrieve printed invalid JSON ({exc}): {text[start : start + 200]!r}"
        ) from exc
    if not isinstance(entry, dict):
        raise ClaudeFlowError("retrieve printed JSON that is not an object")
    return entry


class ClaudeFlowBridge:
    """Store-then-verify through the claude-flow CLI."""

    def __init__(
        self, command: list[str] | None = None, namespace: str = NAMESPACE, timeout: float | None = None
    ):
        if command is None:
            named = os.environ.get(ENV_BIN)
            if named:
                command = shlex.split(named)
            else:
                found = shutil.which("claude-flow")
                command = [found] if found else []
        self.command = command
        self.namespace = namespace
        self.timeout = timeout if timeout is not None else float(os.environ.get(ENV_TIMEOUT, "60"))

    def _call(self, *args: str) -> subprocess.CompletedProcess[str]:
        if not self.command:
            raise ClaudeFlowError(f"claude-flow CLI not found on PATH (or set {ENV_BIN})")
        try:
            proc = subprocess.run(
                [*self.command, *args],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise ClaudeFlowError(f"cannot run {self.command[0]}: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ClaudeFlowError(
                f"claude-flow {args[0]} {args[1]} timed out after {self.timeout:.0f}s"
            ) from exc
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip())[-300:]
            raise ClaudeFlowError(f"claude-flow {args[0]} {args[1]} exited {proc.returncode}: {detail}")
        return proc

    def store(self, key: str, value: Any) -> None:
        """Store `value` as JSON under `key` and read it back; raise ClaudeFlowError unless identical."""
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        self._call("memory", "store", "-k", key, "--value", text, "-n", self.namespace, "--upsert")
        entry = _parse_entry(
            self._call("memory", "retrieve", "-k", key, "-n", self.namespace, "--format", "json").stdout
        )
        content = entry.get("content", entry.get("value"))
        try:
            back = json.loads(content) if isinstance(content, str) else content
        except json.JSONDecodeError:
            back = content
        if back != json.loads(text):
            raise ClaudeFlowError(f"read-back of {self.namespace}/{key} differs from what was stored")

    def retrieve(self, key: str) -> Any:
        entry = _parse_entry(
            self._call("memory", "retrieve", "-k", key, "-n", self.namespace, "--format", "json").stdout
        )
        content = entry.get("content", entry.get("value"))
        return json.loads(content) if isinstance(content, str) else content


def mirror_finding(
    run_dir: Path, run_id: str, key: str, value: Any, bridge: ClaudeFlowBridge | None = None
) -> bool:
    """Mirror one finding when the run asked for it; record the outcome in run.json; never raise."""
    from ml_expert.runs import RunFile

    run_file = RunFile(run_dir)
    try:
        config = run_file.read().config
    except Exception:  # no run.json: not a run directory this bridge can report into
        config = None
    if not sync_enabled(config):
        return False
    bridge = bridge or ClaudeFlowBridge()
    cf_key = f"{run_id}/{key}"
    fresh = {"namespace": bridge.namespace, "synced": [], "failed": {}}
    try:
        bridge.store(cf_key, value)
    except Exception as exc:
        message, error = f"claude-flow memory did not keep {cf_key}: {exc}", str(exc)
        logger.warning(message)

        def failed(data: dict[str, Any]) -> None:
            status = data.setdefault("claude_flow", fresh)
            status["failed"] = {**status.get("failed", {}), cf_key: error}
            data["warnings"] = [*(w for w in data.get("warnings", []) if w != message), message]

        if run_file.exists():
            run_file.edit(failed)
        return False

    def synced(data: dict[str, Any]) -> None:
        status = data.setdefault("claude_flow", fresh)
        status["synced"] = sorted({*status.get("synced", []), cf_key})
        status.get("failed", {}).pop(cf_key, None)

    if run_file.exists():
        run_file.edit(synced)
    return True
