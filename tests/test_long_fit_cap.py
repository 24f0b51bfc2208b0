"""#17 item 9: the time cap stops a single long fit, not only the next one.

A candidate long for the budget by the nominal count rule runs in a child process that is ended
at its deadline (what is left of the budget); the run goes on with the candidates that finished,
and no child process survives. The fits are real: the slow one is a real forest of many trees,
grown one thread at a time so it is slow on any machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from sklearn.datasets import make_classification

from ml_expert.tools.selection import baselines, longfit
from ml_expert.tools.selection.verdicts import StoppedFit

ROWS, FEATURES = 3_000, 20
# 20,000 trees on one thread: minutes on any machine (about 5 ms a tree on 2,400 rows), so no
# deadline below can be met; the cap ends it long before it holds much memory.
SLOW_FOREST = {"n_estimators": 20_000, "n_jobs": 1}


def _csv(tmp_path: Path) -> Path:
    x, y = make_classification(n_samples=ROWS, n_features=FEATURES, n_informative=8, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(FEATURES)])
    frame["target"] = y
    path = tmp_path / "synthetic.csv"
    frame.to_csv(path, index=False)
    return path


def _splits(tmp_path: Path):
    from ml_expert.tools.data.prepare import load_split, prepare_data

    prepared = prepare_data(str(_csv(tmp_path)), "target", 0, tmp_path / "data")
    schema = prepared.input_schema
    return (
        schema,
        load_split(prepared.files, "train", schema, prepared.file_hashes),
        load_split(prepared.files, "val", schema, prepared.file_hashes),
    )


_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _children_before() -> None:
    """The processes this test process already had (a Ray cluster another test file started on
    this pytest worker): what a test must not leave behind is anything beyond them."""
    _BEFORE.clear()
    _BEFORE.update(p.pid for p in psutil.Process().children(recursive=True))


def _no_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.is_running() and p.pid not in _BEFORE]


def _count_launches(monkeypatch) -> list[str]:
    """The labels of the child processes started from here on (run_stoppable still runs them)."""
    launched: list[str] = []
    real = longfit.run_stoppable

    def counting(*args, **kwargs):
        launched.append(kwargs.get("label", "?"))
        return real(*args, **kwargs)

    monkeypatch.setattr(longfit, "run_stoppable", counting)
    return launched


def test_the_rule_is_a_count_and_small_fits_stay_in_process(tmp_path: Path, monkeypatch) -> None:
    far = time.time() + 1e6
    # small data: never a child, whatever the budget (LONG_FIT_MIN_S)
    for base in ("dummy", "linear", "random_forest", "hist_gradient_boosting", "lightgbm"):
        assert longfit.plan_cap(base, 1.0, far, 500, 10, 2) is None, base
    # 3M rows at --budget 20 (#17): every family but the dummy runs where it can be stopped
    for base in ("linear", "random_forest", "hist_gradient_boosting", "lightgbm"):
        cap = longfit.plan_cap(base, 20.0, far, 3_000_000, 20, 2)
        assert cap is not None and cap.nominal_seconds > longfit.LONG_FIT_SHARE * 20, base
        assert cap == longfit.plan_cap(base, 20.0, far, 3_000_000, 20, 2)  # counts, no clock
        assert "nominal cost" in cap.rule and "child process" in cap.rule
    assert longfit.plan_cap("dummy", 20.0, far, 3_000_000, 20, 2) is None
    assert longfit.plan_cap("random_forest", None, None, 3_000_000, 20, 2) is None  # no budget: no cap
    # a forest counts the trees it will grow
    assert longfit.plan_cap("random_forest", 20.0, far, ROWS, FEATURES, 2, SLOW_FOREST) is not None

    # and a run of small fits with a budget never starts a process
    launched = _count_launches(monkeypatch)
    schema, train, val = _splits(tmp_path)
    stopped: list[StoppedFit] = []
    board = baselines.run_baselines(
        schema,
        train,
        val,
        "accuracy",
        0,
        tmp_path / "models",
        names=("dummy", "linear", "hist_gradient_boosting"),
        budget=30.0,
        stopped=stopped,
    )
    assert [c.name for c in board] == ["dummy", "linear", "hist_gradient_boosting"]
    assert launched == [] and stopped == [] and _no_children() == []


def test_a_long_fit_is_stopped_at_its_deadline_and_the_others_go_on(tmp_path: Path, monkeypatch) -> None:
    schema, train, val = _splits(tmp_path)
    # the forest's size as the budget rule would give it, replaced by a slow one (the same fit code)
    monkeypatch.setattr(baselines, "forest_params", lambda *a, **k: dict(SLOW_FOREST))
    budget = 6.0
    stopped: list[StoppedFit] = []
    began = time.perf_counter()
    board = baselines.run_baselines(
        schema,
        train,
        val,
        "accuracy",
        0,
        tmp_path / "models",
        names=("dummy", "linear", "random_forest", "hist_gradient_boosting"),
        budget=budget,
        stopped=stopped,
    )
    wall = time.perf_counter() - began
    assert _no_children() == []
    assert [c.name for c in board] == ["dummy", "linear", "hist_gradient_boosting"]
    assert all(np.isfinite(c.val_score) for c in board)
    [forest] = stopped
    assert forest.name == "random_forest" and forest.started
    assert forest.nominal_seconds > longfit.LONG_FIT_MIN_S
    assert 0 < forest.deadline_seconds <= budget
    assert forest.deadline_seconds - 0.5 <= forest.seconds < forest.deadline_seconds + 10
    assert "cap hit" in forest.reason and f"{forest.deadline_seconds:.1f} s" in forest.reason
    assert wall < budget + 10 + 20, wall  # the deadline, the process's end, then the small boosting fit
    assert not (tmp_path / "models" / "random_forest.joblib").exists()


def test_a_fit_error_in_the_child_is_raised_here_and_leaves_no_process(tmp_path: Path, monkeypatch) -> None:
    schema, train, val = _splits(tmp_path)
    launched = _count_launches(monkeypatch)
    with pytest.raises(ValueError, match="max_depth") as raised:
        baselines.fit_candidate(
            "random_forest",
            schema,
            train,
            val,
            "accuracy",
            0,
            tmp_path / "models",
            params={**SLOW_FOREST, "max_depth": -1},
            budget=1.0,
            ends_at=time.time() + 60,
            features_out=FEATURES,
        )
    assert launched == ["random_forest"]  # it ran in a child, and its error came back as itself
    assert any("in the child process fitting random_forest" in note for note in raised.value.__notes__)
    assert _no_children() == []


def test_a_run_with_every_candidate_stopped_is_a_clear_refusal(tmp_path: Path, monkeypatch) -> None:
    """Every fit but the dummy goes to a child (the rule's thresholds at 0) with a budget no child
    can start within: exit 4 and one JSON error naming the stopped candidates, no traceback."""
    from typer.testing import CliRunner

    from ml_expert.cli import app

    monkeypatch.setattr(longfit, "LONG_FIT_SHARE", 0.0)
    monkeypatch.setattr(longfit, "LONG_FIT_MIN_S", 0.0)
    workspace = tmp_path / "ws"
    result = CliRunner().invoke(
        app,
        ["run", str(_csv(tmp_path)), "--target", "target", "--budget", "0.5", "--no-dnn", "--json"]
        + ["--memory", "embedded", "--workspace", str(workspace), "--seed", "0"],
    )
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["ok"] is False and payload["error_kind"] == "training"
    assert "every candidate but the dummy was stopped by the time cap" in payload["error"]
    for name in ("linear", "random_forest", "hist_gradient_boosting", "lightgbm"):
        assert name in payload["error"]
    assert _no_children() == []
    [run_json] = workspace.glob("runs/*/run.json")
    record = json.loads(run_json.read_text())
    assert record["status"] == "failed" and "time cap" in json.dumps(record)


def test_a_run_with_a_stopped_candidate_finishes_with_the_others(tmp_path: Path, monkeypatch) -> None:
    """The whole graph: the slow forest is stopped at what is left of the budget, recorded as a
    decision with its figures, and the run ships one of the candidates that finished."""
    from ml_expert import run

    monkeypatch.setattr(baselines, "forest_params", lambda *a, **k: dict(SLOW_FOREST))
    budget = 6.0
    began = time.perf_counter()
    result = run(
        _csv(tmp_path),
        "target",
        budget=budget,
        train_dnn=False,
        seed=0,
        memory="embedded",
        workspace=str(tmp_path / "ws"),
    )
    wall = time.perf_counter() - began
    assert result.ok and result.status == "finished", result.reason or result.error
    assert result.chosen_model != "random_forest"
    assert _no_children() == []
    selection = json.loads((Path(result.run_dir) / "findings" / "model-selection.json").read_text())
    [forest] = selection["stopped"]
    assert forest["name"] == "random_forest" and forest["started"]
    assert forest["seconds"] < forest["deadline_seconds"] + 10 and forest["deadline_seconds"] <= budget
    assert "random_forest" not in [c["name"] for c in selection["leaderboard"]]
    assert any(d["decision"] == "stop random_forest: cap hit" for d in selection["decisions"])
    # the budget was spent by the time the ensemble step came, but the data was not sampled: the
    # step (about a second here) still runs, so a busy machine decides as an idle one does; the
    # cap between steps is for data the sample rule fired on (3M rows at --budget 20: 20 s)
    ensemble_decisions = [d for d in selection["decisions"] if "ensemble" in d["decision"]]
    assert ensemble_decisions and all("cap hit" not in d["decision"] for d in ensemble_decisions)
    assert "cap hit" not in selection["ensemble"]["reason"]
    assert wall < 120, wall  # the forest alone would take minutes


def test_a_long_refit_is_stopped_and_the_train_only_fit_ships(tmp_path: Path, monkeypatch) -> None:
    """The chosen model's refit on train + validation (#17: another long fit at scale) runs in a
    child when the count rule calls it long; past max(what is left of the budget, REFIT_SLACK x
    the chosen fit) it is ended and a StoppedFit says why. A short refit stays in this process."""
    schema, train, val = _splits(tmp_path)
    launched = _count_launches(monkeypatch)
    models = tmp_path / "models"
    models.mkdir()
    job = baselines.RefitJob("random_forest", schema, 0, models, settings={"params": SLOW_FOREST})
    began = time.perf_counter()
    stopped = baselines.refit_capped(job, train, val, 6.0, 1.0, 1.0, FEATURES, 2)
    wall = time.perf_counter() - began
    assert isinstance(stopped, StoppedFit) and stopped.started, stopped
    # given the larger of 1 s left and 2 x the chosen fit's 1 s scaled to train + validation rows
    allowed = longfit.REFIT_SLACK * (len(train[1]) + len(val[1])) / len(train[1])
    assert abs(stopped.deadline_seconds - allowed) < 0.5, stopped
    assert "refit's nominal cost" in stopped.reason and "cap hit" in stopped.reason
    assert wall < allowed + 15, wall
    assert launched == ["random_forest"] and _no_children() == []
    assert not (models / "random_forest_train_val.joblib").exists()

    # a refit the rule calls short (the forest's own size on 2,550 rows) is done here, and written
    small = baselines.RefitJob("random_forest", schema, 0, models)
    refit = baselines.refit_capped(small, train, val, 60.0, 10.0, 1.0, FEATURES, 2)
    assert isinstance(refit, dict) and refit["rows"] == len(train[1]) + len(val[1])
    assert Path(str(refit["path"])).exists() and launched == ["random_forest"]


def test_an_ensemble_priced_over_the_share_is_refit_where_its_cap_can_stop_it(
    tmp_path: Path, monkeypatch
) -> None:
    """#12: every shipped model is refit on train + validation. An ensemble whose members' refit
    costs more than the long-fit share by the nominal rule (the price it carries, which its own
    family cannot give) no longer ships train-only by rule: it is refit in a child under the cap,
    finishes and is written when the time allows, and is stopped (the train-only fit ships) when not."""
    from ml_expert.tools.selection.ensemble import EnsembleMember

    schema, train, val = _splits(tmp_path)
    launched = _count_launches(monkeypatch)
    models = tmp_path / "models"
    models.mkdir()
    members = [
        EnsembleMember(name="linear", base="linear", weight=0.5),
        EnsembleMember(name="random_forest", base="random_forest", weight=0.5, params=SLOW_FOREST),
    ]
    job = baselines.RefitJob("ensemble", schema, 0, models, settings={"members": members})
    # without its price the ensemble's family is priced as a linear model: short, in this process
    assert longfit.refit_cap("ensemble", 6.0, 1.0, 1.0, len(train[1]) + len(val[1]), FEATURES, 2) is None
    over = max(longfit.LONG_FIT_SHARE * 6.0, longfit.LONG_FIT_MIN_S) + 1.0
    stopped = baselines.refit_capped(job, train, val, 6.0, 1.0, 1.0, FEATURES, 2, nominal_seconds=over)
    assert isinstance(stopped, StoppedFit) and stopped.started, stopped
    assert f"nominal cost {over:.1f} s" in stopped.reason and "cap hit" in stopped.reason
    assert launched == ["ensemble"] and _no_children() == []
    assert not (models / "ensemble_train_val.joblib").exists()

    quick = [members[0], EnsembleMember(name="lightgbm", base="lightgbm", weight=0.5)]
    job = baselines.RefitJob("ensemble", schema, 0, models, settings={"members": quick})
    refit = baselines.refit_capped(job, train, val, 6.0, 60.0, 1.0, FEATURES, 2, nominal_seconds=over)
    assert isinstance(refit, dict) and refit["rows"] == len(train[1]) + len(val[1]), refit
    assert launched == ["ensemble", "ensemble"] and _no_children() == []
    shipped = __import__("joblib").load(refit["path"])
    assert [n for n, _ in shipped.estimators] == ["linear", "lightgbm"]
