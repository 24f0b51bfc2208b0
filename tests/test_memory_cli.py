"""`ml-expert memory list | get`: a malformed key or an unreachable store is a usage error (exit 2,
one message, or one JSON object with --json), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_expert.cli import app
from ml_expert.errors import EXIT_USAGE

DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _invoke(tmp_path: Path, *args: str):
    result = CliRunner().invoke(app, ["memory", *args, "--workspace", str(tmp_path / "ws")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("list", "../../x"), "must not contain '..'"),
        (("list", "_runs"), "is reserved"),
        (("get", "../../x"), "must not contain '..'"),
        (("get", "x"), "not a finding key"),
        (("list", "--memory", DEAD_REDIS_URL), "127.0.0.1:1"),
        (("list", "some-run", "--memory", DEAD_REDIS_URL), "127.0.0.1:1"),
        (("get", "some-run/metrics", "--memory", DEAD_REDIS_URL), "127.0.0.1:1"),
    ],
)
def test_a_bad_key_or_an_unreachable_store_is_a_usage_error(tmp_path: Path, args, says: str) -> None:
    text = _invoke(tmp_path, *args)
    assert text.exit_code == EXIT_USAGE, text.output
    assert text.stdout == ""
    assert "error (usage)" in text.stderr and says in " ".join(text.stderr.split())

    as_json = _invoke(tmp_path, *args, "--json")
    assert as_json.exit_code == EXIT_USAGE, as_json.output
    error = json.loads(as_json.stdout)  # exactly one JSON object on stdout
    assert error["ok"] is False and error["error_kind"] == "usage" and says in error["error"]


def test_get_prints_the_finding_with_or_without_json(tmp_path: Path) -> None:
    from ml_expert.memory import EmbeddedMemory

    EmbeddedMemory(tmp_path / "ws" / "memory.sqlite").put("run-1", "metrics", {"accuracy": 0.9})
    for extra in ((), ("--json",)):
        result = _invoke(tmp_path, "get", "run-1/metrics", "--memory", "embedded", *extra)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"accuracy": 0.9}


def test_status_says_how_many_findings_are_missing_from_memory_and_how_to_replay_them(
    tmp_path: Path,
) -> None:
    from ml_expert.memory import FindingsRecorder, RedisMemory

    run_id = "unsynced-run"
    path = tmp_path / "ws" / "runs" / run_id
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"run_id": run_id, "status": "finished", "config": {}}))
    recorder = FindingsRecorder(RedisMemory(DEAD_REDIS_URL), path, run_id)
    assert not recorder.record("metrics", {"accuracy": 0.9}) and not recorder.record("training", {"e": 3})
    result = CliRunner().invoke(app, ["status", run_id, "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "2 finding(s) kept only as files, not in memory (metrics, training)" in said
    assert f"`ml-expert memory sync {run_id}` replays them" in said
    as_json = CliRunner().invoke(app, ["status", run_id, "--workspace", str(tmp_path / "ws"), "--json"])
    assert json.loads(as_json.stdout)["unsynced_findings"] == ["metrics", "training"]


def test_a_run_says_at_its_end_how_many_findings_did_not_reach_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ml_expert.cli.run import _print_summary
    from ml_expert.memory import FindingsRecorder, RedisMemory
    from ml_expert.runner import result_from_state

    path = tmp_path / "ws" / "runs" / "r1"
    state = {"run_dir": str(path), "run_id": "r1", "status": "finished", "options": {}}
    assert result_from_state(state).unsynced_findings == []
    FindingsRecorder(RedisMemory(DEAD_REDIS_URL), path, "r1").record("metrics", {"accuracy": 0.9})
    result = result_from_state(state)
    assert result.unsynced_findings == ["metrics"]  # in the run's --json object
    _print_summary(result)
    said = " ".join(capsys.readouterr().out.split())
    assert "1 finding(s) kept only as files" in said and "ml-expert memory sync r1" in said
