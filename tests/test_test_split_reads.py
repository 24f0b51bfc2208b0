"""The test split is read for one model only: a read interrupted by a kill (then resumed) is logged,
not counted as a second evaluation; a second read with results, or another model, fails the gate."""

from __future__ import annotations

from pathlib import Path

from phase_helpers import candidate, validation_result

from ml_expert.agents.tester import _complete_test_read, _log_test_read
from ml_expert.graph.gates import validation_gate
from ml_expert.runs import RunFile
from ml_expert.tools.selection.records import Candidate
from ml_expert.workspace import read_run

CHOSEN = Candidate.model_validate(candidate("hist_gradient_boosting", sha256="ab" * 32))


def _check(validation: dict) -> dict:
    verdict = validation_gate({"options": {}, "validation": validation_result(**validation)})
    return next(c for c in verdict.checks if c.name == "test_split_read_once").model_dump()


def test_interrupted_read_is_logged_and_not_a_second_evaluation(tmp_path: Path) -> None:
    RunFile(tmp_path).update(run_id="r")
    assert _log_test_read(tmp_path, CHOSEN) == (1, 0, 1)  # killed before any result ...
    assert _log_test_read(tmp_path, CHOSEN) == (1, 1, 1)  # ... resumed: same model, one result
    _complete_test_read(tmp_path)
    log = read_run(tmp_path)["test_read_log"]
    assert [e["status"] for e in log] == ["started", "completed"]
    check = _check({"test_reads": 1, "test_reads_interrupted": 1, "test_read_models": 1})
    assert check["passed"] and "interrupted" in check["detail"]


def test_second_evaluation_or_other_model_fails(tmp_path: Path) -> None:
    RunFile(tmp_path).update(run_id="r")
    _log_test_read(tmp_path, CHOSEN)
    _complete_test_read(tmp_path)
    assert _log_test_read(tmp_path, CHOSEN)[0] == 2
    assert not _check({"test_reads": 2, "test_read_models": 1})["passed"]
    assert _log_test_read(tmp_path, Candidate.model_validate(candidate("dnn", sha256="cd" * 32)))[2] == 2
    assert not _check({"test_reads": 1, "test_read_models": 2})["passed"]
