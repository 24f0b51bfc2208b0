"""Mirror a run's findings into claude-flow's memory through its CLI, in one batch at the end of a run.

claude-flow (also published as ruflo) keeps its memory in files whose layout changes between
versions, so this bridge never touches them: it calls the CLI, the stable surface. A claude-flow
agent reads what a run stored with

    claude-flow memory retrieve -k RUN_ID/summary -n ml-expert --format json   (value under `content`)
    claude-flow memory retrieve -k latest -n ml-expert                          (the newest run id)

How a sync goes (enabled by the run option `claude_flow_sync`, CLI `--claude-flow-sync`, or
`ML_EXPERT_CLAUDE_FLOW_SYNC=1`):

1. `check_cli` once, when the run starts: which CLI (``ML_EXPERT_CLAUDE_FLOW_BIN``, else the one
   `ml-expert setup claude` recorded in the workspace, else PATH `claude-flow`, `ruflo`, then
   `npx --no-install claude-flow`) and its version. A 2.x CLI is refused (its `memory store`
   reports success while storing a junk entry). A failure here is one warning, and nothing more
   is tried for the run.
2. At the end of the run, every finding goes to claude-flow in one `memory import` of a JSON
   file; at the same time `RUN_ID/summary` and `latest` are stored with `memory store --tags
   run:…,phase:…,agent:…`; then one `memory export` of the namespace reads everything back and
   each value is compared with what was written. Four CLI calls at the end, whatever the number
   of findings (claude-flow's background daemon is not started: `RUFLO_DAEMON_AUTOSTART=0`
   unless the caller set it). See `ClaudeFlowBridge.sync` for which claude-flow store holds what.

A failure is a warning in run.json (`warnings`, `claude_flow`), never a failed run: the findings
stay in the run directory and the ml-expert memory store.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from ml_expert.config import RunConfig

logger = logging.getLogger("ml_expert.memory")

NAMESPACE = "ml-expert"
LATEST = "latest"
SUMMARY = "summary"
ENV_SYNC = "ML_EXPERT_CLAUDE_FLOW_SYNC"
ENV_BIN = "ML_EXPERT_CLAUDE_FLOW_BIN"
ENV_TIMEOUT = "ML_EXPERT_CLAUDE_FLOW_TIMEOUT"
RECORD_FILE = "claude-flow.json"
MIN_MAJOR = 3
_REASON_RE = re.compile(r"error|warn|not found|denied|refused|invalid", re.IGNORECASE)
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)([0-9A-Za-z.+-]*)")

#: Which phase and which agent wrote each finding: the tags claude-flow keeps with an entry.
FINDING_ORIGIN: dict[str, tuple[str, str]] = {
    "data-analysis": ("data-preparation", "ml-developer"),
    "model-selection": ("model-selection", "researcher"),
    "training": ("training", "ml-developer"),
    "metrics": ("validation", "tester"),
    "deployment": ("deployment", "ml-developer"),
    "registry": ("deployment", "ml-developer"),
    "status": ("finish", "ml-expert"),
    "summary": ("finish", "ml-expert"),
}


class ClaudeFlowError(RuntimeError):
    """The claude-flow CLI is missing, too old, failed, or did not give back what was stored."""


class ClaudeFlowCLI(BaseModel):
    """A claude-flow CLI that answered `--version`: how to call it and where its memory lives."""

    command: list[str] = Field(description="argv prefix that runs the CLI.")
    version: str = Field(description="The version it printed, e.g. 3.43.0.")
    source: str = Field(
        description="How it was found: env, recorded, PATH claude-flow, PATH ruflo, npx, given."
    )
    project: str | None = Field(
        None, description="Folder the CLI runs in (its memory is <project>/.swarm); None: the current folder."
    )
    hooks: bool = Field(False, description="Also call `hooks pre-task` / `post-task` for each run.")


class SyncReport(BaseModel):
    """What a run's claude-flow sync did; kept in run.json under `claude_flow`."""

    namespace: str = NAMESPACE
    cli: str | None = Field(None, description="The CLI used (argv joined), when one was found.")
    version: str | None = None
    ok: bool = Field(False, description="Every key was stored and read back unchanged.")
    stored: int = Field(0, description="Keys stored and read back unchanged.")
    failed: int = Field(0, description="Keys that did not make it.")
    keys: list[str] = Field(default_factory=list, description="The keys stored, e.g. RUN_ID/metrics, latest.")
    errors: dict[str, str] = Field(default_factory=dict, description="Why each failed key failed.")
    error: str | None = Field(None, description="Why nothing was tried (CLI missing, too old, ...).")
    seconds: float = Field(0.0, description="Wall time the sync added at the end of the run.")
    cpu_seconds: float = Field(0.0, description="CPU time of the CLI calls at the end (load-independent).")


def sync_report(run_dir: Path) -> SyncReport | None:
    """The sync's outcome kept in a run's run.json (None when the run did not ask for one)."""
    try:
        block = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8")).get("claude_flow")
        return SyncReport.model_validate(block) if isinstance(block, dict) else None
    except (OSError, ValueError):
        return None


def sync_enabled(config: RunConfig | None = None) -> bool:
    if config is not None and config.claude_flow_sync:
        return True
    return os.environ.get(ENV_SYNC, "").strip().lower() in ("1", "true", "yes", "on")


def _timeout() -> float:
    return float(os.environ.get(ENV_TIMEOUT, "60"))


def cli_env() -> dict[str, str]:
    """The CLI's environment: claude-flow 3 starts a background daemon from any command unless
    told not to; a batch write from ml-expert should leave no process behind."""
    return {**os.environ, "RUFLO_DAEMON_AUTOSTART": os.environ.get("RUFLO_DAEMON_AUTOSTART", "0")}


def _run(command: list[str], args: list[str], cwd: str | None, timeout: float | None = None) -> str:
    """Run the CLI; its stdout, or ClaudeFlowError with the reason."""
    what = " ".join(args[:2])
    try:
        proc = subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=timeout or _timeout(),
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=cli_env(),
        )
    except FileNotFoundError as exc:
        raise ClaudeFlowError(f"cannot run {command[0]}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ClaudeFlowError(f"claude-flow {what} timed out after {timeout or _timeout():.0f}s") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()] or [""]
        # npm and the CLI print banners, hints and log paths around the one line that says why
        detail = next((ln for ln in lines if _REASON_RE.search(ln)), lines[-1])[:300]
        raise ClaudeFlowError(f"claude-flow {what} exited {proc.returncode}: {detail}")
    return proc.stdout


def parse_version(text: str) -> tuple[str, int]:
    """`ruflo v3.43.0` -> ("3.43.0", 3)."""
    match = _VERSION_RE.search(text)
    if not match:
        raise ClaudeFlowError(f"--version printed no version: {text.strip()[:120]!r}")
    return match.group(0).lstrip("v"), int(match.group(1))


def probe(command: list[str], source: str, cwd: str | None = None) -> ClaudeFlowCLI:
    """Ask `command --version`; refuse a CLI older than 3.x with the reason."""
    version, major = parse_version(_run(command, ["--version"], cwd, timeout=min(_timeout(), 60)))
    if major < MIN_MAJOR:
        raise ClaudeFlowError(
            f"{' '.join(command)} is claude-flow {version}, a {major}.x CLI: its `memory store` reports "
            f"success while storing a junk entry. Install claude-flow 3 "
            f"(npm install claude-flow@3.43.0) or point {ENV_BIN} at one"
        )
    return ClaudeFlowCLI(command=command, version=version, source=source, project=cwd)


def candidates(named: str | None = None) -> list[tuple[list[str], str]]:
    """Where a claude-flow CLI may be, in the order tried."""
    if named:
        return [(shlex.split(named), "given")]
    if os.environ.get(ENV_BIN):
        return [(shlex.split(os.environ[ENV_BIN]), "env")]
    out: list[tuple[list[str], str]] = []
    for name in ("claude-flow", "ruflo"):
        found = shutil.which(name)
        if found:
            out.append(([found], f"PATH {name}"))
    npx = shutil.which("npx")
    if npx:
        out.append(([npx, "--no-install", "claude-flow"], "npx"))
    return out


def locate_cli(project: Path | None = None, named: str | None = None) -> ClaudeFlowCLI:
    """The first candidate that answers `--version` as a 3.x CLI; ClaudeFlowError saying what was tried."""
    tried: list[str] = []
    cwd = str(project) if project else None
    for command, source in candidates(named):
        try:
            return probe(command, source, cwd)
        except ClaudeFlowError as exc:
            tried.append(f"{' '.join(command)}: {exc}")
    if not tried:
        raise ClaudeFlowError(
            "no claude-flow CLI: none of claude-flow, ruflo or npx is on PATH "
            f"(npm install claude-flow@3.43.0, or set {ENV_BIN})"
        )
    raise ClaudeFlowError("no usable claude-flow CLI; tried " + "; ".join(tried))


def read_recorded(workspace: Path) -> ClaudeFlowCLI | None:
    """The CLI `ml-expert setup claude` recorded for this workspace, if any."""
    path = Path(workspace) / RECORD_FILE
    try:
        return ClaudeFlowCLI.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        logger.warning("ignoring %s: %s", path, exc)
        return None


def record_cli(workspace: Path, cli: ClaudeFlowCLI) -> tuple[Path, bool]:
    """Write the CLI into the workspace; (path, whether it changed)."""
    path = Path(workspace) / RECORD_FILE
    text = cli.model_dump_json(indent=2) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path, True


def check_cli(workspace: Path) -> ClaudeFlowCLI:
    """The CLI a run should use, checked once: env, else recorded, else found on PATH / npx."""
    if os.environ.get(ENV_BIN):
        return probe(shlex.split(os.environ[ENV_BIN]), "env")
    recorded = read_recorded(workspace)
    if recorded is not None:
        checked = probe(recorded.command, "recorded", recorded.project)
        return checked.model_copy(update={"hooks": recorded.hooks})
    return locate_cli()


def tags_for(run_id: str, key: str) -> list[str]:
    if key.startswith("guardrails/"):
        phase, agent = f"gate-{key.split('/', 1)[1]}", "guardrails"
    else:
        phase, agent = FINDING_ORIGIN.get(key, ("other", "ml-expert"))
    return [f"run:{run_id}", f"phase:{phase}", f"agent:{agent}"]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _same(stored: Any, value: Any) -> bool:
    if isinstance(value, str):
        return stored == value
    try:
        back = json.loads(stored) if isinstance(stored, str) else stored
    except json.JSONDecodeError:
        return False
    return back == json.loads(_text(value))


def import_document(entries: dict[str, Any], run_id: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The `memory import` file: the same shape `memory export` writes (schema ruflo-memory-export/v1)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {
        "schema": "ruflo-memory-export/v1",
        "exportedAt": now,
        "namespace": namespace,
        "count": len(entries),
        "entries": [
            {
                "key": key,
                "namespace": namespace,
                "value": _text(value),  # what `memory import` reads (and `memory export` writes)
                "createdAt": now,
                "updatedAt": now,
            }
            for key, value in entries.items()
        ],
    }


def exported_contents(path: Path, namespace: str = NAMESPACE) -> dict[str, Any]:
    """key -> content of a `memory export` file."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    entries = doc.get("entries", []) if isinstance(doc, dict) else doc
    return {
        e["key"]: e.get("value", e.get("content"))
        for e in entries
        if isinstance(e, dict) and "key" in e and e.get("namespace", namespace) == namespace
    }


class ClaudeFlowBridge:
    """The batch writes and the read-back, through one CLI."""

    def __init__(self, cli: ClaudeFlowCLI, namespace: str = NAMESPACE) -> None:
        self.cli = cli
        self.namespace = namespace

    def call(self, *args: str) -> str:
        return _run(self.cli.command, list(args), self.cli.project)

    def store(self, key: str, value: Any, tags: list[str] | None = None) -> None:
        args = ["memory", "store", "-k", key, "--value", _text(value), "-n", self.namespace, "--upsert"]
        if tags:
            args += ["--tags", ",".join(tags)]
        self.call(*args)

    def import_entries(self, entries: dict[str, Any], run_id: str) -> None:
        with tempfile.TemporaryDirectory(prefix="ml-expert-cf-") as tmp:
            path = Path(tmp) / "import.json"
            path.write_text(json.dumps(import_document(entries, run_id, self.namespace)), encoding="utf-8")
            self.call("memory", "import", "-i", str(path), "-n", self.namespace)

    def export(self) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="ml-expert-cf-") as tmp:
            path = Path(tmp) / "export.json"
            self.call("memory", "export", "-o", str(path), "-n", self.namespace, "--include-vectors", "false")
            if not path.exists():
                raise ClaudeFlowError("memory export wrote no file")
            return exported_contents(path, self.namespace)

    def retrieve(self, key: str) -> Any:
        text = self.call("memory", "retrieve", "-k", key, "-n", self.namespace, "--format", "json")
        start = text.find("{")  # info lines ([WARN] ...) may come first, even with --format json
        if start < 0:
            raise ClaudeFlowError(f"retrieve printed no JSON object: {text.strip()[:200]!r}")
        try:
            entry = json.loads(text[start:])
        except json.JSONDecodeError as exc:
            raise ClaudeFlowError(f"retrieve printed invalid JSON ({exc})") from exc
        content = entry.get("content", entry.get("value")) if isinstance(entry, dict) else None
        try:
            return json.loads(content) if isinstance(content, str) else content
        except json.JSONDecodeError:
            return content

    def sync(self, run_id: str, findings: dict[str, Any]) -> SyncReport:
        """Findings in one import; `summary` and `latest` stored with tags beside it; one export reads back.

        claude-flow 3.43 keeps two stores (its issue #3196): `memory import` writes the AgentDB one
        (`.swarm/agentdb-memory.db`), which its MCP tools (`memory_retrieve`, `memory_search`) read;
        `memory store` writes where the CLI's `memory retrieve` looks too. So the two keys anyone
        reads first, `RUN_ID/summary` and `latest`, are stored with `memory store --tags
        run:…,phase:…,agent:…` (the import keeps no tags), at the same time as the import.
        Keys the read-back misses (two writers at once can lose one's rows when claude-flow runs
        on its sql.js fallback instead of native SQLite) are written again, one call after another.
        """
        entries = {f"{run_id}/{key}": value for key, value in findings.items() if key != SUMMARY}
        tagged = {f"{run_id}/{SUMMARY}": findings[SUMMARY]} if SUMMARY in findings else {}
        tagged[LATEST] = run_id
        report = SyncReport(
            namespace=self.namespace, cli=" ".join(self.cli.command), version=self.cli.version
        )
        errors: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=1 + len(tagged)) as pool:
            jobs = [([*entries], pool.submit(self.import_entries, entries, run_id))]
            jobs += [
                ([key], pool.submit(self.store, key, value, self._tags(run_id, key)))
                for key, value in tagged.items()
            ]
            for keys, job in jobs:
                try:
                    job.result()
                except ClaudeFlowError as exc:
                    errors.update({k: str(exc) for k in keys})
        written = {**entries, **tagged}
        missing = self._verify(written, errors)
        if missing:  # lost to a concurrent write: once more, one call at a time
            for key in missing:
                errors.pop(key, None)
            lost = {k: v for k, v in entries.items() if k in missing}
            try:
                if lost:
                    self.import_entries(lost, run_id)
                for key in (k for k in tagged if k in missing):
                    self.store(key, tagged[key], self._tags(run_id, key))
            except ClaudeFlowError as exc:
                errors.update({k: str(exc) for k in missing})
            self._verify({k: v for k, v in written.items() if k in missing}, errors)
        report.keys = [k for k in written if k not in errors]
        report.stored, report.failed, report.errors = len(report.keys), len(errors), errors
        report.ok = not errors
        return report

    @staticmethod
    def _tags(run_id: str, key: str) -> list[str]:
        return (
            tags_for(run_id, SUMMARY)
            if key != LATEST
            else [f"run:{run_id}", "phase:finish", "agent:ml-expert"]
        )

    def _verify(self, written: dict[str, Any], errors: dict[str, str]) -> list[str]:
        """Read everything back with one export; note differences in `errors`; return keys missing there."""
        if all(k in errors for k in written):
            return []
        try:
            back = self.export()
        except ClaudeFlowError as exc:
            errors.update({k: f"not read back: {exc}" for k in written if k not in errors})
            return []
        missing = []
        for key, value in written.items():
            if key in errors:
                continue
            if key not in back:
                errors[key] = "not in claude-flow memory after the write"
                missing.append(key)
            elif not _same(back[key], value):
                errors[key] = "read back differs from what was stored"
        return missing

    def hook(self, *args: str) -> subprocess.Popen[bytes] | None:
        """Fire a `hooks` call in the background (claude-flow's routing learns from it); never raises."""
        try:
            return subprocess.Popen(
                [*self.cli.command, "hooks", *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.cli.project,
                env=cli_env(),
            )
        except OSError as exc:
            logger.warning("claude-flow hooks %s failed: %s", args[0], exc)
            return None
