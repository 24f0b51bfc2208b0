"""Registration survives a kill: one version per run, its audit trail and its alias, no duplicate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_expert.hashing import sha256_file
from ml_expert.registry import Registry

CLI = [sys.executable, "-m", "ml_expert"]
CRASH_POINTS = (
    "registry.before_version",
    "registry.after_version",
    "registry.after_register_line",
    "registry.after_alias",
)


def _package(tmp_path: Path) -> Path:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "model.onnx").write_bytes(b"not really a model")
    files = {"model.onnx": sha256_file(package / "model.onnx")}
    (package / "manifest.json").write_text(json.dumps({"files": files}))
    return package


def _register_in_child(ws: Path, package: Path, run_id: str, crash_at: str | None) -> int:
    code = (
        "import sys; from ml_expert.registry import Registry; "
        f"print(Registry({str(ws)!r}).register({str(package)!r}, {{'run_id': {run_id!r}}}))"
    )
    env = {**os.environ, "ML_EXPERT_ACTOR": "recovery-test"}
    if crash_at:
        env["ML_EXPERT_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_kill_inside_register_is_repaired_at_the_next_operation(tmp_path: Path, crash_at: str) -> None:
    ws, package = tmp_path / "ws", _package(tmp_path)
    assert _register_in_child(ws, package, "run-a", None) == 0
    assert _register_in_child(ws, package, "run-b", crash_at) == -9  # SIGKILL mid-registration
    registry = Registry(ws)
    versions = registry.versions()  # any registry operation repairs first
    audit = registry.audit()
    if crash_at == "registry.before_version":
        # nothing had appeared: the staging copy is gone, the registry is as before
        assert [v["version"] for v in versions] == ["v1"]
        assert registry.aliases() == {"production": "v1"}
        assert not list((ws / "registry" / "versions").glob(".*staging"))
    else:
        assert [v["version"] for v in versions] == ["v1", "v2"]
        assert registry.aliases() == {"production": "v2", "previous": "v1"}
        v2_events = [(e["action"], e["run_id"]) for e in audit if e["version"] == "v2"]
        assert v2_events == [("register", "run-b"), ("promote", "run-b")]
    assert not (ws / "registry" / "pending.json").exists()
    # the run comes back (resume): it gets its own version, never a second one
    assert _register_in_child(ws, package, "run-b", None) == 0
    assert [v["run_id"] for v in Registry(ws).versions()] == ["run-a", "run-b"]
    assert [e["action"] for e in Registry(ws).audit()] == ["register", "promote"] * 2


def test_audit_reader_survives_a_torn_line_and_the_writer_never_glues(tmp_path: Path) -> None:
    ws, package = tmp_path / "ws", _package(tmp_path)
    assert _register_in_child(ws, package, "run-a", None) == 0
    log = ws / "registry" / "audit.log"
    with open(log, "a") as handle:
        handle.write('{"when": "2026-01-01T00:00:00Z", "action": "prom')  # a crash mid-append
    assert [e["action"] for e in Registry(ws).audit()] == ["register", "promote"]
    assert _register_in_child(ws, package, "run-b", None) == 0
    assert [e["action"] for e in Registry(ws).audit()] == ["register", "promote"] * 2
    shown = subprocess.run(
        [*CLI, "models", "show", "production", "--audit", "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stderr


def test_kill_during_registration_then_resume_gives_one_version(tmp_path: Path) -> None:
    """The whole pipeline: killed as the version appears, resumed, exactly one version, production set."""
    ws = tmp_path / "ws"
    env = {**os.environ, "ML_EXPERT_CRASH_AT": "registry.after_version", "ML_EXPERT_ACTOR": "t"}
    args = ["--workspace", str(ws), "--json"]
    killed = subprocess.run(
        [
            *CLI,
            "run",
            "iris",
            "--budget",
            "30",
            "--no-dnn",
            "--memory",
            "embedded",
            "--run-id",
            "killed-run",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    env.pop("ML_EXPERT_CRASH_AT")
    resumed = subprocess.run(
        [*CLI, "resume", "killed-run", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["status"] == "finished"
    registry = Registry(ws)
    assert [(v["version"], v["run_id"]) for v in registry.versions()] == [("v1", "killed-run")]
    assert registry.aliases() == {"production": "v1"}
    assert [(e["action"], e["version"]) for e in registry.audit()] == [("register", "v1"), ("promote", "v1")]


def test_release_comparison_is_repeated_under_the_lock(tmp_path: Path) -> None:
    """Two runs that both passed the gate while there was no production: the worse one is refused."""
    from ml_expert.registry import ReleaseRefused, not_worse_than
    from ml_expert.registry.records import ReleaseCandidate

    ws, package = tmp_path / "ws", _package(tmp_path)
    same = {"data_fingerprint": "f", "seed": 1, "split_sizes": [1, 2, 3], "primary_metric": "f1"}
    better, worse = {**same, "test_score": 0.9}, {**same, "test_score": 0.8}
    for candidate in (better, worse):  # what each gate saw
        assert not_worse_than(ReleaseCandidate(**candidate), None)[0]

    def guard(candidate: dict):
        return lambda current: None if not_worse_than(ReleaseCandidate(**candidate), current)[0] else "worse"

    registry = Registry(ws)
    assert registry.register(package, {"run_id": "a", **better}, guard=guard(better)) == "v1"
    with pytest.raises(ReleaseRefused):
        registry.register(package, {"run_id": "b", **worse}, guard=guard(worse))
    assert [v["version"] for v in registry.versions()] == ["v1"]


def test_two_concurrent_releases_cannot_both_pass_the_comparison(tmp_path: Path) -> None:
    """Two runs whose release gates passed at the same moment (no production yet) register from two
    threads: the better one is inside registration, comparing, when the worse one starts. The worse
    one must see it and be refused: the comparison and the promotion share the registry lock."""
    import threading
    import time

    from ml_expert.registry import ReleaseRefused, not_worse_than
    from ml_expert.registry.records import ReleaseCandidate, VersionRecord

    ws, package = tmp_path / "ws", _package(tmp_path)
    same = {"data_fingerprint": "f", "seed": 1, "split_sizes": [1, 2, 3], "primary_metric": "f1"}
    runs = {"better": {**same, "test_score": 0.9}, "worse": {**same, "test_score": 0.8}}
    gates_done, comparing = threading.Barrier(2), threading.Event()
    outcome: dict[str, object] = {}

    def release(name: str) -> None:
        candidate, registry = runs[name], Registry(ws)
        production = registry.aliases().get("production")
        assert production is None and not_worse_than(ReleaseCandidate(**candidate), None)[0]  # the gate
        gates_done.wait(timeout=10)
        if name == "worse":
            assert comparing.wait(timeout=10)

        def guard(current: VersionRecord | None) -> str | None:
            if name == "better":
                comparing.set()
                time.sleep(0.3)  # the other run registers meanwhile, if nothing stops it
            passed, detail = not_worse_than(ReleaseCandidate(**candidate), current)
            return None if passed else detail

        try:
            outcome[name] = registry.register(package, {"run_id": name, **candidate}, guard=guard)
        except ReleaseRefused as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=release, args=(name,)) for name in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcome["better"] == "v1", outcome
    assert isinstance(outcome["worse"], ReleaseRefused), outcome  # was: registered as v2, production
    registry = Registry(ws)
    assert [v["run_id"] for v in registry.versions()] == ["better"]
    assert registry.aliases() == {"production": "v1"}
    assert [(e["action"], e["version"]) for e in registry.audit()] == [("register", "v1"), ("promote", "v1")]


def _fine_tuned_state(ws: Path, fingerprint: str, score: float, scored: str, force: bool = False) -> dict:
    """A `--from` run whose tester scored production `scored` on its own (new) test rows."""
    from phase_helpers import validation_result

    return {
        "options": {"seed": 1, "workspace": str(ws), "force": force},
        "data": {"fingerprint": fingerprint, "split_sizes": {"train": 6, "val": 2, "test": 2}},
        "validation": validation_result(
            test_score=score, production_on_test={"version": scored, "test_score": 0.7}
        ),
    }


def test_a_fine_tuned_release_compared_with_an_older_production_is_refused(tmp_path: Path) -> None:
    """Two `--from` runs both beat production v1 on their own new test rows (their gates passed
    together). The first registers v2; the second's comparison was with v1, not with v2, so under
    the lock it is refused instead of replacing v2 unseen (the data differ, so nothing else compares)."""
    import threading
    import time

    from ml_expert.agents.registrar import release_guard
    from ml_expert.registry import ReleaseRefused
    from ml_expert.registry.records import VersionRecord

    ws, package = tmp_path / "ws", _package(tmp_path)
    old = {"data_fingerprint": "old", "seed": 1, "split_sizes": {"train": 6, "val": 2, "test": 2}}
    assert Registry(ws).register(package, {"run_id": "parent", "primary_metric": "accuracy", **old}) == "v1"
    states = {
        "first": _fine_tuned_state(ws, "new-1", 0.8, scored="v1"),
        "second": _fine_tuned_state(ws, "new-2", 0.75, scored="v1"),
    }
    comparing = threading.Event()
    outcome: dict[str, object] = {}

    def release(name: str) -> None:
        guard = release_guard(states[name])
        if name == "second":
            assert comparing.wait(timeout=10)

        def slow_guard(current: VersionRecord | None) -> str | None:
            comparing.set()
            time.sleep(0.3)  # the second run registers meanwhile, if nothing stops it
            return guard(current)

        try:
            outcome[name] = Registry(ws).register(
                package, {"run_id": name}, guard=slow_guard if name == "first" else guard
            )
        except ReleaseRefused as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=release, args=(name,)) for name in states]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcome["first"] == "v2", outcome
    assert isinstance(outcome["second"], ReleaseRefused), outcome  # was: v3, production, never compared
    assert "compared with production v1" in str(outcome["second"]) and "now v2" in str(outcome["second"])
    assert Registry(ws).aliases()["production"] == "v2"
    # with no new production meanwhile, the gate's comparison with v1 stands
    assert release_guard(_fine_tuned_state(ws, "new-3", 0.75, scored="v2"))(Registry(ws).record("v2")) is None
    forced = _fine_tuned_state(ws, "new-4", 0.75, scored="v1", force=True)
    assert release_guard(forced)(Registry(ws).record("v2")) is None  # --force: replaced all the same
