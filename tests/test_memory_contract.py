"""One contract for every memory backend, plus the recorder that keeps findings safe.

The Redis half runs against a real server (``$REDIS_URL`` or 127.0.0.1:6379/0). It is never
skipped: a missing server fails these tests with a message that says so, because a skipped
contract test would hide a broken backend.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ml_expert.memory import (
    LATEST_KEY,
    NAMESPACE,
    EmbeddedMemory,
    FindingsRecorder,
    MemoryStore,
    MemoryUnavailable,
    RedisMemory,
    open_memory,
    redact_url,
)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

NESTED = {
    "accuracy": 0.9736842105263158,
    "confusion_matrix": [[40, 2], [1, 71]],
    "per_class": {"0": {"f1": 0.96, "support": 42}, "1": {"f1": 0.98, "support": 72}},
    "passed": True,
    "note": "données ✓",
    "missing": None,
}


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test server's URL; fail (never skip) when it does not answer."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {redact_url(REDIS_URL)} ({exc}). The memory contract tests need "
            "a real Redis server: start one (redis-server) or set REDIS_URL.",
            pytrace=False,
        )
    finally:
        client.close()
    return REDIS_URL


class RunIds:
    """Unique run ids for one test, so tests sharing a Redis database never see each other."""

    def __init__(self) -> None:
        self.prefix = f"pytest-{uuid.uuid4().hex[:10]}"
        self.made: list[str] = []

    def __call__(self, name: str = "run") -> str:
        run_id = f"{self.prefix}-{name}"
        self.made.append(run_id)
        return run_id

    def mine(self, items: list[str]) -> list[str]:
        return [item for item in items if self.prefix in item]


@pytest.fixture
def run_ids() -> RunIds:
    return RunIds()


@pytest.fixture(params=["embedded", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, run_ids: RunIds) -> Iterator[MemoryStore]:
    """Each backend in turn; Redis keys made by the test are deleted afterwards."""
    if request.param == "embedded":
        mem: MemoryStore = EmbeddedMemory(tmp_path / "memory.sqlite")
    else:
        mem = RedisMemory(request.getfixturevalue("redis_url"))
    try:
        yield mem
    finally:
        for run_id in run_ids.made:
            mem.delete_run(run_id)
        mem.close()


# -- the contract --------------------------------------------------------------------------


def test_put_get_round_trips_nested_json(store: MemoryStore, run_ids: RunIds) -> None:
    run = run_ids()
    store.put(run, "metrics", NESTED)
    store.put(run, "guardrails/data", {"passed": False, "failed": ["leakage"]})
    store.put(run, "scalar", 3)

    assert store.get(run, "metrics") == NESTED
    assert store.get(run, "guardrails/data") == {"passed": False, "failed": ["leakage"]}
    assert store.get(run, "scalar") == 3
    assert store.get_full(f"{NAMESPACE}/{run}/metrics") == NESTED
    assert store.get(run, "absent") is None
    assert store.get_full(f"{NAMESPACE}/{run}/absent") is None


def test_put_overwrites(store: MemoryStore, run_ids: RunIds) -> None:
    run = run_ids()
    store.put(run, "training", {"epochs": 3})
    store.put(run, "training", {"epochs": 7})
    assert store.get(run, "training") == {"epochs": 7}
    assert store.keys(run) == [f"{NAMESPACE}/{run}/training"]


def test_values_are_strict_json(store: MemoryStore, run_ids: RunIds) -> None:
    """NaN/inf become null (strict JSON readers reject NaN); tuples become lists."""
    run = run_ids()
    store.put(run, "metrics", {"roc_auc": math.nan, "loss": math.inf, "shape": (3, 4)})
    assert store.get(run, "metrics") == {"roc_auc": None, "loss": None, "shape": [3, 4]}
    with pytest.raises(TypeError, match="JSON-serialisable"):
        store.put(run, "bad", {"x": object()})
    assert store.get(run, "bad") is None


def test_numpy_values_are_stored_as_plain_json(store: MemoryStore, run_ids: RunIds) -> None:
    """Agents pass metrics straight from NumPy; the store converts them without importing NumPy."""
    np = pytest.importorskip("numpy")
    run = run_ids()
    store.put(
        run,
        "metrics",
        {"acc": np.float32(0.5), "n": np.int64(7), "cm": np.array([[1, 2], [3, 4]]), "ok": np.bool_(True)},
    )
    assert store.get(run, "metrics") == {"acc": 0.5, "n": 7, "cm": [[1, 2], [3, 4]], "ok": True}


def test_keys_per_run_and_across_runs(store: MemoryStore, run_ids: RunIds) -> None:
    a, b = run_ids("a"), run_ids("b")
    store.put(a, "metrics", 1)
    store.put(a, "data-analysis", 2)
    store.put(a, "guardrails/data", 3)
    store.put(b, "training", 4)

    assert store.keys(a) == [
        f"{NAMESPACE}/{a}/data-analysis",
        f"{NAMESPACE}/{a}/guardrails/data",
        f"{NAMESPACE}/{a}/metrics",
    ]
    assert store.keys(b) == [f"{NAMESPACE}/{b}/training"]
    everything = store.keys()
    assert everything == sorted(everything)
    assert run_ids.mine(everything) == sorted(store.keys(a) + store.keys(b))
    assert LATEST_KEY not in everything  # bookkeeping keys are not findings
    assert store.keys(run_ids("never-written")) == []


def test_keys_of_one_run_do_not_include_a_run_sharing_its_prefix(store: MemoryStore, run_ids: RunIds) -> None:
    short, longer = run_ids("x"), run_ids("x-2")
    store.put(short, "metrics", 1)
    store.put(longer, "metrics", 2)
    assert store.keys(short) == [f"{NAMESPACE}/{short}/metrics"]


def test_latest_and_runs_ordering(store: MemoryStore, run_ids: RunIds) -> None:
    first, second, third = run_ids("first"), run_ids("second"), run_ids("third")
    store.put(first, "data-analysis", {})
    assert store.latest() == first
    assert store.get_full(LATEST_KEY) == first
    store.put(second, "data-analysis", {})
    store.put(third, "data-analysis", {})
    assert store.latest() == third

    # Writing to an older run makes it the latest but does not move it in runs().
    store.put(first, "metrics", {})
    assert store.latest() == first
    assert run_ids.mine(store.runs()) == [first, second, third]


def test_delete_run(store: MemoryStore, run_ids: RunIds) -> None:
    keep, drop = run_ids("keep"), run_ids("drop")
    store.put(keep, "metrics", 1)
    store.put(drop, "metrics", 2)
    store.put(drop, "guardrails/training", 3)
    assert store.latest() == drop

    store.delete_run(drop)
    assert store.keys(drop) == []
    assert store.get(drop, "metrics") is None
    assert drop not in store.runs()
    assert store.latest() != drop
    assert store.get(keep, "metrics") == 1
    store.delete_run(drop)  # deleting twice is harmless


def test_delete_last_runs_clears_latest(tmp_path: Path) -> None:
    """On a store of its own (not shared Redis), latest falls back to the newest remaining run."""
    store = EmbeddedMemory(tmp_path / "memory.sqlite")
    store.put("r1", "metrics", 1)
    store.put("r2", "metrics", 2)
    store.put("r3", "metrics", 3)
    store.delete_run("r3")
    assert store.latest() == "r2"
    store.delete_run("r1")
    assert store.latest() == "r2"
    store.delete_run("r2")
    assert store.latest() is None
    assert store.runs() == []
    assert store.keys() == []


@pytest.mark.parametrize(
    ("run_id", "key", "message"),
    [
        ("", "metrics", "non-empty"),
        ("r", "", "non-empty"),
        ("has space", "metrics", "whitespace"),
        ("r", "has\tspace", "whitespace"),
        ("r", "line\nbreak", "whitespace"),
        ("a/b", "metrics", "'/'"),
        ("..", "metrics", "'..'"),
        ("r", "../escape", "'..'"),
        ("r", "a/../b", "'..'"),
        ("r", "/lead", "start or end"),
        ("r", "trail/", "start or end"),
        ("r", "a//b", "'//'"),
        ("latest", "metrics", "reserved"),
        ("_runs", "metrics", "reserved"),
        ("r", "x" * 201, "longer than"),
        ("back\\slash", "metrics", "backslash"),
    ],
)
def test_invalid_run_ids_and_keys_are_rejected(
    store: MemoryStore, run_id: str, key: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.put(run_id, key, 1)
    with pytest.raises(ValueError, match=message):
        store.get(run_id, key)


def test_invalid_full_keys_and_run_filters_are_rejected(store: MemoryStore) -> None:
    for bad in ("metrics", "other/run/metrics", f"{NAMESPACE}/run-only", f"{NAMESPACE}/_runs"):
        with pytest.raises(ValueError):
            store.get_full(bad)
    with pytest.raises(ValueError):
        store.keys("bad run")
    with pytest.raises(ValueError):
        store.delete_run("a/b")


def test_ping_and_backend(store: MemoryStore) -> None:
    assert store.ping() is True
    store.check()
    assert store.backend in {"embedded", "redis"}
    assert store.location in repr(store)


# -- backend-specific guarantees ---------------------------------------------------------


def test_plain_redis_client_reads_json(redis_url: str, run_ids: RunIds) -> None:
    """Any agent in a larger workflow can read findings with a bare client and no ml-expert code."""
    run = run_ids()
    store = RedisMemory(redis_url)
    plain = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        store.put(run, "metrics", NESTED)
        text = plain.get(f"{NAMESPACE}/{run}/metrics")
        assert isinstance(text, str)
        assert json.loads(text) == NESTED
        assert plain.get(LATEST_KEY) == run  # plain text, not a quoted JSON string
        assert plain.zscore(f"{NAMESPACE}/_runs", run) is not None
        assert plain.type(f"{NAMESPACE}/{run}/metrics") == "string"
    finally:
        store.delete_run(run)
        store.close()
        plain.close()
    assert plain.get(f"{NAMESPACE}/{run}/metrics") is None


def test_redis_key_listing_treats_glob_characters_literally(redis_url: str, run_ids: RunIds) -> None:
    store = RedisMemory(redis_url)
    star, other = run_ids("a*"), run_ids("ab")
    try:
        store.put(star, "metrics", 1)
        store.put(other, "metrics", 2)
        assert store.keys(star) == [f"{NAMESPACE}/{star}/metrics"]
    finally:
        store.delete_run(star)
        store.delete_run(other)
        store.close()


def test_redis_down_raises_memory_unavailable_naming_the_url() -> None:
    store = RedisMemory(DEAD_REDIS_URL)  # lazy: constructing never connects
    assert store.ping() is False
    with pytest.raises(MemoryUnavailable, match=r"127\.0\.0\.1:1"):
        store.put("r", "metrics", 1)
    with pytest.raises(MemoryUnavailable, match=r"127\.0\.0\.1:1"):
        store.get("r", "metrics")
    with pytest.raises(MemoryUnavailable, match=r"127\.0\.0\.1:1"):
        store.check()
    store.close()


def test_redis_url_password_is_redacted() -> None:
    store = RedisMemory("redis://user:s3cret@127.0.0.1:1/0")
    with pytest.raises(MemoryUnavailable) as info:
        store.put("r", "metrics", 1)
    assert "s3cret" not in str(info.value)
    assert "user:***@127.0.0.1:1" in str(info.value)
    assert "s3cret" not in repr(store)


def test_two_embedded_instances_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    one, two = EmbeddedMemory(path), EmbeddedMemory(path)
    one.put("r1", "metrics", {"acc": 0.9})
    assert two.get("r1", "metrics") == {"acc": 0.9}
    assert two.latest() == "r1"
    two.put("r2", "training", [1, 2])
    assert one.get("r2", "training") == [1, 2]
    assert one.runs() == ["r1", "r2"]
    assert one.keys() == two.keys() == [f"{NAMESPACE}/r1/metrics", f"{NAMESPACE}/r2/training"]
    one.delete_run("r1")
    assert two.runs() == ["r2"]


def _write_many(path: str, worker: int, count: int) -> None:
    store = EmbeddedMemory(path)
    for i in range(count):
        store.put(f"w{worker}", f"finding-{i}", {"worker": worker, "i": i})


def test_embedded_store_is_safe_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "memory.sqlite")
    EmbeddedMemory(path)  # create the schema once, as a run would
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, w, 25)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    store = EmbeddedMemory(path)
    assert len(store.keys()) == 100
    assert sorted(store.runs()) == ["w0", "w1", "w2", "w3"]
    assert store.get("w3", "finding-24") == {"worker": 3, "i": 24}


def test_embedded_store_is_wal_and_plain_sqlite_readable(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "memory.sqlite"
    EmbeddedMemory(path).put("r1", "metrics", NESTED)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        text = conn.execute("SELECT value FROM kv WHERE key = ?", (f"{NAMESPACE}/r1/metrics",)).fetchone()[0]
    assert json.loads(text) == NESTED


def test_closed_embedded_store_refuses_work(tmp_path: Path) -> None:
    store = EmbeddedMemory(tmp_path / "memory.sqlite")
    store.close()
    assert store.ping() is False
    with pytest.raises(MemoryUnavailable, match="closed"):
        store.put("r", "metrics", 1)


# -- factory ------------------------------------------------------------------------------


def test_open_memory_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    default = open_memory(None, tmp_path)
    assert isinstance(default, EmbeddedMemory)
    assert default.path == tmp_path / "memory.sqlite"
    assert isinstance(open_memory("embedded", tmp_path), EmbeddedMemory)

    absolute = tmp_path / "elsewhere" / "m.sqlite"
    store = open_memory(f"sqlite://{absolute}", tmp_path)
    assert isinstance(store, EmbeddedMemory) and store.path == absolute
    relative = open_memory("sqlite://sub/m.sqlite", tmp_path)
    assert isinstance(relative, EmbeddedMemory) and relative.path == tmp_path / "sub" / "m.sqlite"

    for url in ("redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0", "unix:///tmp/nowhere.sock"):
        assert isinstance(open_memory(url, tmp_path), RedisMemory)  # lazy: no connection needed

    monkeypatch.setenv("REDIS_URL", DEAD_REDIS_URL)
    from_env = open_memory(None, tmp_path)
    assert isinstance(from_env, RedisMemory) and from_env.url == DEAD_REDIS_URL
    assert isinstance(open_memory("embedded", tmp_path), EmbeddedMemory)  # explicit beats the env

    for bad in ("http://example.com", "memory.sqlite", "sqlite://"):
        with pytest.raises(ValueError, match="memory URL"):
            open_memory(bad, tmp_path)


def test_open_memory_verify_names_the_unreachable_url(tmp_path: Path, redis_url: str) -> None:
    with pytest.raises(MemoryUnavailable, match=r"127\.0\.0\.1:1"):
        open_memory(DEAD_REDIS_URL, tmp_path, verify=True)
    store = open_memory(redis_url, tmp_path, verify=True)
    assert store.backend == "redis"
    store.close()


# -- recorder -----------------------------------------------------------------------------


def _file_value(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def test_recorder_always_writes_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    rec = FindingsRecorder(None, run_dir, "r1")
    assert rec.record("metrics", NESTED) is False  # no store: file only
    assert rec.record("guardrails/data", {"passed": True}) is False
    assert _file_value(run_dir / "findings" / "metrics.json") == NESTED
    assert _file_value(run_dir / "findings" / "guardrails__data.json") == {"passed": True}
    assert rec.unsynced() == []  # nothing to sync to
    assert set(rec.findings()) == {"metrics", "guardrails/data"}


def test_recorder_writes_file_and_store(store: MemoryStore, tmp_path: Path, run_ids: RunIds) -> None:
    run = run_ids()
    rec = FindingsRecorder(store, tmp_path / run, run)
    assert rec.record("guardrails/data", {"passed": True}) is True
    assert store.get(run, "guardrails/data") == {"passed": True}
    assert _file_value(tmp_path / run / "findings" / "guardrails__data.json") == {"passed": True}
    assert not rec.unsynced_path.exists()


def test_recorder_survives_redis_down_and_sync_replays(
    store: MemoryStore, tmp_path: Path, run_ids: RunIds, caplog: pytest.LogCaptureFixture
) -> None:
    run = run_ids()
    run_dir = tmp_path / run
    rec = FindingsRecorder(RedisMemory(DEAD_REDIS_URL), run_dir, run)
    with caplog.at_level(logging.WARNING, logger="ml_expert.memory"):
        assert rec.record("data-analysis", {"rows": 150}) is False
        assert rec.record("guardrails/data", {"passed": True}) is False
        assert rec.record("metrics", NESTED) is False
    assert any("127.0.0.1:1" in r.getMessage() and "metrics" in r.getMessage() for r in caplog.records)
    assert all(r.name == "ml_expert.memory" for r in caplog.records)

    for name in ("data-analysis.json", "guardrails__data.json", "metrics.json"):
        assert (run_dir / "findings" / name).is_file()
    assert rec.unsynced() == ["data-analysis", "guardrails/data", "metrics"]
    assert _file_value(run_dir / "findings" / "_unsynced.json") == rec.unsynced()

    assert rec.sync(store) == 3
    assert store.get(run, "metrics") == NESTED
    assert store.get(run, "guardrails/data") == {"passed": True}
    assert store.get(run, "data-analysis") == {"rows": 150}
    assert rec.unsynced() == []
    assert not (run_dir / "findings" / "_unsynced.json").exists()


class _FailsAfter(EmbeddedMemory):
    """An embedded store that starts failing after ``ok`` writes, like Redis dying mid-run."""

    def __init__(self, path: Path, ok: int) -> None:
        super().__init__(path)
        self.ok = ok

    def _write(self, run_id: str, key: str, text: str) -> None:
        if self.ok <= 0:
            raise MemoryUnavailable(f"embedded memory at {self.path} failed: disk I/O error")
        self.ok -= 1
        super()._write(run_id, key, text)


def test_recorder_store_failing_mid_run_loses_nothing(tmp_path: Path) -> None:
    flaky = _FailsAfter(tmp_path / "memory.sqlite", ok=1)
    rec = FindingsRecorder(flaky, tmp_path / "r1", "r1")
    assert rec.record("data-analysis", {"rows": 10}) is True
    assert rec.record("model-selection", {"model": "rf"}) is False
    assert rec.record("training", {"epochs": 4}) is False
    assert rec.unsynced() == ["model-selection", "training"]

    # Once the store recovers, re-recording a key takes it off the unsynced list.
    flaky.ok = 100
    assert rec.record("training", {"epochs": 5}) is True
    assert rec.unsynced() == ["model-selection"]
    assert rec.sync() == 3
    assert flaky.get("r1", "model-selection") == {"model": "rf"}
    assert flaky.get("r1", "training") == {"epochs": 5}
    assert rec.unsynced() == []


def test_recorder_sync_failure_raises_and_keeps_unsynced(tmp_path: Path) -> None:
    rec = FindingsRecorder(RedisMemory(DEAD_REDIS_URL), tmp_path / "r1", "r1")
    rec.record("metrics", {"acc": 1.0})
    with pytest.raises(MemoryUnavailable):
        rec.sync()
    assert rec.unsynced() == ["metrics"]


def test_recorder_rejects_bad_keys_before_writing(tmp_path: Path) -> None:
    rec = FindingsRecorder(None, tmp_path / "r1", "r1")
    for bad in ("", "a b", "../x", "a__b", "_unsynced"):
        with pytest.raises(ValueError):
            rec.record(bad, 1)
    with pytest.raises(TypeError):
        rec.record("metrics", {"x": object()})
    assert rec.findings() == {}
    with pytest.raises(ValueError):
        FindingsRecorder(None, tmp_path / "r1", "bad/run")


def test_recorder_files_are_strict_json(tmp_path: Path) -> None:
    rec = FindingsRecorder(None, tmp_path / "r1", "r1")
    rec.record("metrics", {"roc_auc": math.nan})
    text = (tmp_path / "r1" / "findings" / "metrics.json").read_text(encoding="utf-8")
    assert "NaN" not in text
    assert json.loads(text) == {"roc_auc": None}


def test_importing_memory_stays_light() -> None:
    """Agents, the CLI and the MCP server import memory; it must not pull in the ML stack."""
    code = (
        "import sys, ml_expert.memory; "
        "heavy = [m for m in ('tensorflow', 'keras', 'numpy', 'pandas', 'sklearn', 'langgraph') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@contextlib.contextmanager
def _hung_redis() -> Iterator[str]:
    """The URL of a server that accepts connections and never answers."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hang() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_hang, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_hung_redis_costs_one_timeout_per_run_and_one_warning(
    tmp_path: Path, run_ids: RunIds, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts connections and never answers: the run goes on at file speed, and
    the store is not asked again for the rest of the run, however long it lasts."""
    from types import SimpleNamespace

    from ml_expert.memory import FindingsRecorder
    from ml_expert.memory import recorder as recorder_module

    run_id = run_ids("hung")
    with _hung_redis() as url, caplog.at_level(logging.WARNING, logger="ml_expert.memory"):
        recorder = FindingsRecorder(RedisMemory(url), tmp_path / "run", run_id)
        start = time.monotonic()
        stored = [recorder.record(f"finding-{i}", {"i": i}) for i in range(8)]
        elapsed = time.monotonic() - start
        # An hour later in the same run (a long training phase): still not asked again.
        later = SimpleNamespace(monotonic=lambda: time.monotonic() + 3600.0)
        monkeypatch.setattr(recorder_module, "time", later)
        again = time.monotonic()
        stored.append(FindingsRecorder(RedisMemory(url), tmp_path / "run", run_id).record("late", {}))
        late = time.monotonic() - again
    assert stored == [False] * 9
    assert recorder.unsynced() == sorted(["late", *(f"finding-{i}" for i in range(8))])  # all kept for a sync
    assert elapsed < 4.0, elapsed  # was ~4.5 s per finding
    assert late < recorder_module.SLOW_FAILURE_S, late  # was one more timeout every 30 s
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings  # was one per finding
    assert "not asked again in this run" in warnings[0] and f"ml-expert memory sync {run_id}" in warnings[0]


def test_memory_sync_replays_and_status_reports_what_is_missing(
    tmp_path: Path, redis_url: str, run_ids: RunIds
) -> None:
    from ml_expert.memory import FindingsRecorder

    ws = tmp_path / "ws"
    run_id = run_ids("sync")
    path = ws / "runs" / run_id
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"run_id": run_id, "status": "finished", "config": {}}))
    dead = RedisMemory("redis://127.0.0.1:1/0")  # nothing listens on port 1
    recorder = FindingsRecorder(dead, path, run_id)
    recorder.record("metrics", {"accuracy": 0.9})
    recorder.record("training", {"epochs": 3})
    cli = [sys.executable, "-m", "ml_expert"]
    status = subprocess.run(
        [*cli, "status", run_id, "--workspace", str(ws), "--json"], capture_output=True, text=True, timeout=60
    )
    assert json.loads(status.stdout)["unsynced_findings"] == ["metrics", "training"]
    synced = subprocess.run(
        [*cli, "memory", "sync", run_id, "--memory", redis_url, "--workspace", str(ws), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["replayed"] == 2
    assert RedisMemory(redis_url).get(run_id, "metrics") == {"accuracy": 0.9}
    status = subprocess.run(
        [*cli, "status", run_id, "--workspace", str(ws), "--json"], capture_output=True, text=True, timeout=60
    )
    assert json.loads(status.stdout)["unsynced_findings"] == []
    bad = subprocess.run(
        [*cli, "memory", "get", "../../x", "--workspace", str(ws)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "not a memory key" in bad.stderr and "Traceback" not in bad.stderr
