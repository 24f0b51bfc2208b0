"""The seams that still read a phase's record by string key read it through its model (issue 13):
a misspelt or missing key is refused, naming the field, where `.get(key)` used to read None and
go on (the release compared nothing, the summary left the rows out)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from phase_helpers import CLUSTERING, deployment_result, selection_fields, validation_result

from ml_expert.errors import PhaseResultError

SIZES = {"train": 70, "val": 15, "test": 15}


def _release_state(tmp_path, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "options": {"workspace": str(tmp_path), "seed": 3},
        "data": {"source": "iris.csv", "task": "classification", **data},
        "validation": validation_result(),
        "deployment": deployment_result(),
    }


def test_the_release_gate_reads_the_test_rows_typed(tmp_path) -> None:
    from ml_expert.graph.gates import release_gate

    def production_check(data: dict[str, Any]) -> Any:
        checks = {c.name: c for c in release_gate(_release_state(tmp_path, data)).checks}
        return checks["not_worse_than_production"]

    assert production_check({"fingerprint": "f" * 64, "split_sizes": SIZES}).passed  # no production yet
    misspelt = {"fingerprint": "f" * 64, "split_sizes": {"train": 70, "valid": 15, "test": 15}}
    for broken, field in ((misspelt, "split_sizes"), ({"split_sizes": SIZES}, "fingerprint")):
        check = production_check(broken)
        assert not check.passed and field in check.detail, check.detail


def test_the_registry_candidate_record_reads_the_test_rows_typed(tmp_path) -> None:
    from ml_expert.registry import candidate_record

    state = _release_state(tmp_path, {"fingerprint": "f" * 64, "split_sizes": SIZES, "task": "regression"})
    record = candidate_record(state)
    assert record.split_sizes == SIZES and record.data_fingerprint == "f" * 64 and record.seed == 3
    with pytest.raises(PhaseResultError, match="split_sizes"):
        candidate_record(_release_state(tmp_path, {"fingerprint": "f" * 64, "split_size": SIZES}))


def test_the_release_is_named_through_the_run_config_and_the_data_result(tmp_path) -> None:
    from ml_expert.errors import UsageError
    from ml_expert.graph.gates import release_gate
    from ml_expert.registry.store import release_model_name

    rows = {"fingerprint": "f" * 64, "split_sizes": SIZES}
    state = _release_state(tmp_path, {**rows, "source": "/data/Penguins 2024.csv"})
    assert release_model_name(state) == "penguins-2024"
    named = {**state, "options": {**state["options"], "model_name": "birds"}}
    assert release_model_name(named) == "birds"
    before = {**state, "options": {**state["options"], "data": "/data/wine.csv"}, "data": {}}
    assert release_model_name(before) == "wine"  # no data result yet: the data option's stem
    # misspelt: `.get("model_name")` read None and the release went to the data's model instead
    misnamed = {**state, "options": {**state["options"], "model_nam": "birds"}}
    with pytest.raises(UsageError, match="model_nam"):
        release_model_name(misnamed)
    # a data result without its source: `.get("source")` read None and named the release "model"
    sourceless = {**state, "data": {**rows, "sorce": "penguins.csv", "task": "classification"}}
    with pytest.raises(PhaseResultError, match="source"):
        release_model_name(sourceless)
    check = {c.name: c for c in release_gate(sourceless).checks}["not_worse_than_production"]
    assert not check.passed and "source" in check.detail, check.detail


def _analysis(**fields: Any) -> dict[str, Any]:
    """A data-analysis finding as the preparation writes it (the keys the summary reads)."""
    return {
        "source": "wine.csv",
        "fingerprint": "f" * 64,
        "task": "classification",
        "features": ["a", "b"],
        "split_sizes": SIZES,
        "preprocessor_sha256": "0" * 64,
        "profile": {"rows": 100},
        **fields,
    }


def test_the_summary_reads_the_data_finding_typed() -> None:
    from ml_expert.memory.summary import build_summary

    summary = build_summary("r", {"data-analysis": _analysis()})
    assert "wine.csv (100 rows, 2 features)" in summary.text and summary.task == "classification"
    broken = _analysis(split_sizes={"train": 70, "validation": 15, "test": 15})
    with pytest.raises(PhaseResultError, match="split_sizes"):
        build_summary("r", {"data-analysis": broken})


EPOCHS = {
    "max_epochs": 40,
    "estimated_epoch_seconds": 0.5,
    "flops_per_row": 1e4,
    "share_seconds": 30.0,
    "rule": "max_epochs = clamp(...)",
}
READER = {
    "layer": "lstm",
    "forced": False,
    "reason": "LSTM: long sequence",
    "length": 400,
    "rows": 2000,
    "budget": 120.0,
    "room": math.inf,  # a loss's room
    "reach": 5,
    "epochs": {"conv": 60, "lstm": 30, "transformer": 10},
    "flops_per_row": {"conv": 1e5, "lstm": 4e5, "transformer": 9e5},
}
TRIALS = {"name": "forest", "trials": 12, "nominal_fit_seconds": 0.4, "share_seconds": 20.0, "rule": "r"}


def _selection(plan: dict[str, Any], tuning: dict[str, Any] | None = None) -> dict[str, Any]:
    network = {
        "train_dnn": True,
        "network": "Keras sequence LSTM",
        "room": None,
        "dnn_config": {"hidden_units": [64, 32], "batch_size": 32, "max_epochs": 40},
        "epoch_plan": EPOCHS,
        "estimated_flops_per_row": 1e4,
        "reader": READER,
        "estimated_memory_mb": 210.0,
        "available_memory_mb": 9000.0,
        **plan,
    }
    return selection_fields(plan=network, tuning=tuning)


def test_the_network_plan_records_are_typed_and_write_the_same_json() -> None:
    from ml_expert.phases import SelectionResult

    tuning = {"plan": TRIALS, "ran": False}
    read = SelectionResult.of({"selection": _selection({}, tuning)})
    assert read.plan.epoch_plan and read.plan.epoch_plan.estimated_epoch_seconds == 0.5
    assert read.plan.reader and read.plan.reader.layer == "lstm"
    assert read.tuning and read.tuning.plan.trials == 12
    state = read.state()
    # the JSON the state keeps: the same keys, in their order; the infinite room written as null
    written = _selection({})["plan"] | {"reader": READER | {"room": None}}
    assert json.dumps(state["plan"]) == json.dumps(written)
    assert state["tuning"] == tuning
    assert SelectionResult.of({"selection": state}).state() == state  # read back (room null -> NaN -> null)


@pytest.mark.parametrize(
    ("plan", "tuning", "field"),
    [
        ({"epoch_plan": {**EPOCHS, "max_epoch": 40}}, None, "epoch_plan"),
        ({"epoch_plan": {k: v for k, v in EPOCHS.items() if k != "rule"}}, None, "epoch_plan"),
        ({"reader": {**READER, "layers": "lstm"}}, None, "reader"),
        ({}, {"plan": {**TRIALS, "trial": 3}, "ran": False}, "tuning.plan"),
    ],
)
def test_a_misspelt_plan_record_is_refused_naming_it(plan: dict, tuning: dict | None, field: str) -> None:
    from ml_expert.phases import SelectionResult

    with pytest.raises(PhaseResultError, match=field.replace(".", r"\.")):
        SelectionResult.of({"selection": _selection(plan, tuning)})


def _group(rows: int, accuracy: float, selected: float, tpr: float) -> dict[str, Any]:
    """One group's figures as tools/validation/fairness.py writes them (binary: class "1")."""
    rates = {"selection_rate": selected, "true_positive_rate": tpr, "false_positive_rate": 0.1}
    return {"rows": rows, "accuracy": accuracy, **{name: {"1": rate} for name, rate in rates.items()}}


SEX = {
    "per_group": {"female": _group(40, 0.9, 0.5, 0.9), "male": _group(44, 0.8, 0.4, 0.6)},
    "groups_compared": ["female", "male"],
    "demographic_parity_difference": 0.1,
    "equalized_odds_difference": 0.3,
    "accuracy_gap": 0.1,
    "gap": 0.3,
}
INCOME = {
    "per_group": {"low": {"rows": 30, "mae": 2.0, "rmse": 2.5, "mean_error": 0.1}},
    "groups_compared": ["low"],
    "mae_difference": 0.0,
    "gap": 0.0,
}


def _fairness_checks(fairness: dict[str, Any], **options: Any) -> dict[str, Any]:
    from ml_expert.graph.gates import validation_gate

    state = {"options": options, "validation": {**validation_result(), "fairness": fairness}}
    return {c.name: c for c in validation_gate(state).checks}


def test_the_validation_gate_reads_the_fairness_figures_typed() -> None:
    from ml_expert.phases import ValidationResult

    checks = _fairness_checks({"sex": SEX, "income": INCOME}, max_fairness_gap=0.2)
    sex, income = checks["fairness_sex"], checks["fairness_income"]
    assert (
        not sex.passed
        and sex.value == 0.3
        and "equalized odds difference across ['female', 'male']" in sex.detail
    )
    assert income.passed and "relative MAE gap" in income.detail
    read = ValidationResult.of({"validation": {**validation_result(), "fairness": {"sex": SEX}}})
    assert json.dumps(read.state()["fairness"]) == json.dumps({"sex": SEX})  # the same JSON, in order
    # a gap misspelt: the gate read None and, on an auto-detected column, passed it
    for broken in ({**SEX, "gap ": 0.3}, {k: v for k, v in SEX.items() if k != "gap"}):
        checks = _fairness_checks({"sex": broken})
        assert list(checks) == ["result_typed"] and "fairness" in checks["result_typed"].detail


def _clustering_checks(found: dict[str, Any]) -> dict[str, Any]:
    from ml_expert.graph.gates import validation_gate

    validation = {**validation_result(primary_metric="silhouette", profiles_path="p"), "clustering": found}
    return {c.name: c for c in validation_gate({"options": {}, "validation": validation}).checks}


def test_the_validation_gate_reads_the_clustering_figures_typed() -> None:
    from ml_expert.phases import ValidationResult

    checks = _clustering_checks(CLUSTERING)
    assert checks["better_than_chance_permuted"].passed and checks["stability"].value == 0.9
    assert checks["cluster_sizes"].value == {"train": [71, 32], "test": [15, 8]}
    read = ValidationResult.of({"validation": {**validation_result(), "clustering": CLUSTERING}})
    assert json.dumps(read.state()["clustering"]) == json.dumps(CLUSTERING)  # the same JSON, in order
    # misspelt: the gate read sizes_ok as missing (refused, "not measured") or a stability of None
    for broken, field in (
        ({**CLUSTERING, "size_ok": True}, "clustering"),
        ({k: v for k, v in CLUSTERING.items() if k != "stability"}, "stability"),
        ({**CLUSTERING, "chance": [{**CLUSTERING["chance"][0], "pvalue": 0.02}]}, "chance"),
    ):
        checks = _clustering_checks(broken)
        assert list(checks) == ["result_typed"] and field in checks["result_typed"].detail


CHOICE = {
    "criterion": "silhouette",
    "criterion_reason": "clustering has no label",
    "k_range": [2, 3],
    "k_rule": "k = 2..3",
    "kmeans_by_k": [{"k": 2, "silhouette": 0.6}],
    "gmm_by_k": [],
    "density": {"tried": False},
    "chosen": "kmeans_k2",
    "choice_reason": "the highest silhouette",
    "comparison": {},
    "fit_rows": 100,
}


def test_the_clustering_selection_is_typed() -> None:
    from ml_expert.phases import SelectionResult

    def selection(found: dict[str, Any]) -> dict[str, Any]:
        return {"selection": selection_fields(task="clustering", metric="silhouette", clustering=found)}

    read = SelectionResult.of(selection(CHOICE))
    assert read.clustering and read.clustering.choice_reason == "the highest silhouette"
    assert json.dumps(read.state()["clustering"]) == json.dumps(CHOICE)  # the same JSON, in order
    # the training phase read ["choice_reason"]: a misspelt key was a KeyError there, not here
    for broken in (
        {**CHOICE, "choice_reasons": "x"},
        {k: v for k, v in CHOICE.items() if k != "choice_reason"},
    ):
        with pytest.raises(PhaseResultError, match="clustering"):
            SelectionResult.of(selection(broken))


def test_the_network_checkpoint_records_are_typed_and_write_the_same_json(tmp_path) -> None:
    from phase_helpers import candidate, network_record

    from ml_expert.graph.gates import training_gate
    from ml_expert.hashing import sha256_file
    from ml_expert.tools.training.records import NetworkRecord

    best = tmp_path / "best.keras"
    best.write_bytes(b"weights")
    loaded = {"kind": "best", "path": str(best), "sha256": sha256_file(best)}  # no epoch: the best
    skipped = [{"path": "epoch-0003.keras", "reason": "SHA-256 does not match"}]
    last = {"kind": "last", "epoch": 3, "path": "epoch-0003.keras", "sha256": "0" * 64}
    record = network_record(loaded_checkpoint=loaded, skipped_checkpoints=skipped)
    assert json.dumps(record["loaded_checkpoint"]) == json.dumps(loaded)  # the keys it was given, in order
    assert record["skipped_checkpoints"] == skipped
    assert network_record(loaded_checkpoint=last)["loaded_checkpoint"] == last
    model = tmp_path / "dnn.keras"
    model.write_bytes(b"model")
    network = network_record(history={"loss": [0.9, 0.5]}, loaded_checkpoint=loaded)
    chosen = candidate("dnn", kind="keras", family="neural", path=str(model), sha256=sha256_file(model))
    training = {"dnn": network, "chosen": chosen, "choice_reason": "r", "leaderboard": [chosen]}
    checks = {c.name: c for c in training_gate({"training": training, "retries": {}}).checks}
    assert checks["network_checkpoint_verified"].passed
    # misspelt: the gate read the hash as None and said "no checkpoint recorded"
    misspelt = {**network, "loaded_checkpoint": {**loaded, "sha": loaded["sha256"]}}
    with pytest.raises(ValueError, match="loaded_checkpoint"):
        NetworkRecord.model_validate(misspelt)
    checks = training_gate({"training": {**training, "dnn": misspelt}, "retries": {}}).checks
    assert [c.name for c in checks] == ["result_typed"] and "loaded_checkpoint" in checks[0].detail


CALIBRATION = {"brier_score": 0.08, "expected_calibration_error": 0.04, "bins": 10}


def test_the_calibration_figures_are_typed_and_write_the_same_json() -> None:
    import numpy as np

    from ml_expert.phases import ValidationResult
    from ml_expert.tools.validation.calibration import calibration

    found = calibration(np.array([0, 1, 1, 0, 1]), np.array([0.1, 0.8, 0.6, 0.3, 0.9]))
    assert list(found.model_dump()) == ["brier_score", "expected_calibration_error", "bins", "curve"]
    assert found.figures().model_dump() == {k: v for k, v in found.model_dump().items() if k != "curve"}
    read = ValidationResult.of({"validation": validation_result(calibration=CALIBRATION)})
    assert read.calibration and read.calibration.brier_score == 0.08
    assert json.dumps(read.state()["calibration"]) == json.dumps(CALIBRATION)  # the same JSON, in order
    # misspelt or with the curve the state never keeps: a dict took it as it was
    for broken in ({**CALIBRATION, "brier": 0.08}, {**CALIBRATION, "curve": {}}, {"bins": 10}):
        with pytest.raises(PhaseResultError, match="calibration"):
            ValidationResult.of({"validation": {**validation_result(), "calibration": broken}})


CLUSTERING_ANALYSIS = {
    "task": "clustering",
    "task_reason": "no target column",
    "rows": SIZES,
    "features_in": 4,
    "features_out": 4,
    "modality": "tabular",
}


def test_the_task_analysis_is_typed_and_writes_the_same_json() -> None:
    from phase_helpers import ANALYSIS

    from ml_expert.phases import SelectionResult

    for analysis in (ANALYSIS, CLUSTERING_ANALYSIS):  # a clustering's has no classes: none written
        read = SelectionResult.of({"selection": selection_fields(analysis=analysis)})
        assert read.analysis.features_out == 4 and read.analysis.rows.train == 70
        assert json.dumps(read.state()["analysis"]) == json.dumps(analysis)  # the same JSON, in order
        assert SelectionResult.of({"selection": read.state()}).state() == read.state()
    for broken in ({**ANALYSIS, "feature_out": 4}, {k: v for k, v in ANALYSIS.items() if k != "modality"}):
        with pytest.raises(PhaseResultError, match="analysis"):
            SelectionResult.of({"selection": selection_fields(analysis=broken)})


def _ensemble_plan() -> dict[str, Any]:
    """The ensemble plan as the researcher wrote it: a selection whose optimistic score is not finite
    (written as null) and a heavy member left out."""
    from ml_expert.tools.selection.ensemble import EnsemblePlan

    verdict = {
        "metric": "accuracy",
        "simple": "ensemble without random_forest",
        "candidate": "ensemble",
        "scheme": "bootstrap over 150 validation rows",
        "simple_score": 0.9,
        "candidate_score": 0.9,
        "gain": 0.0,
        "standard_error": 0.01,
        "margin": 0.02,
        "wins": False,
        "rule": "a tie leaves it out",
    }
    plan = {
        "pool": ["linear", "random_forest", "lightgbm"],
        "selection_metric": "log_loss",
        "selection_reason": "weights chosen by log-loss",
        "rounds": 25,
        "selection": {
            "names": ["linear", "lightgbm"],
            "weights": [0.6, 0.4],
            "counts": [15, 10],
            "rounds": 25,
            "score": math.nan,
            "trace": [-0.3, math.nan],
        },
        "heavy": [
            {
                "name": "random_forest",
                "bytes": 10**8,
                "others_bytes": 10**6,
                "verdict": verdict,
                "kept": False,
            }
        ],
        "built": True,
        "reason": "the ensemble beat lightgbm by more than the noise",
    }
    return EnsemblePlan.model_validate(plan).model_dump()


def test_the_ensemble_plan_is_typed_and_writes_the_same_json() -> None:
    from ml_expert.phases import SelectionResult

    plan = _ensemble_plan()
    read = SelectionResult.of({"selection": selection_fields(ensemble=plan)})
    assert read.ensemble and read.ensemble.built and read.ensemble.heavy[0].name == "random_forest"
    state = read.state()
    written = json.loads(json.dumps(plan).replace("NaN", "null"))  # a non-finite score as null
    assert json.dumps(state["ensemble"]) == json.dumps(written)  # the same JSON, in order
    assert SelectionResult.of({"selection": state}).state() == state  # null -> NaN -> null
    assert SelectionResult.of({"selection": selection_fields()}).ensemble is None  # clustering: none
    for broken in ({**plan, "buit": True}, {**plan, "heavy": [{**plan["heavy"][0], "kept ": False}]}):
        with pytest.raises(PhaseResultError, match="ensemble"):
            SelectionResult.of({"selection": selection_fields(ensemble=broken)})


def test_is_clustering_reads_the_data_result_typed() -> None:
    from test_typed_records import _data_state

    from ml_expert.agents.clustering import is_clustering

    assert is_clustering({"data": _data_state(task="clustering")})
    assert not is_clustering({"data": _data_state()})
    # misspelt: `.get("task")` read None and the supervised phases ran on a clustering's data
    broken = {k: v for k, v in _data_state(task="clustering").items() if k != "task"} | {"tsk": "clustering"}
    with pytest.raises(PhaseResultError, match="task"):
        is_clustering({"data": broken})


def test_the_router_and_the_run_result_read_the_gate_verdicts_typed(tmp_path) -> None:
    from pydantic import ValidationError

    from ml_expert.graph.builder import _router
    from ml_expert.runner import result_from_state

    passed = {"gate": "data", "passed": True, "checks": [], "failed": []}
    route = _router("data", "model_selection")
    assert route({"gates": {"data": passed}}) == "model_selection"
    assert route({"gates": {}}) == "finish"
    # misspelt: `.get("passed")` read None and a passed gate ended the run as a refusal
    misspelt = {**{k: v for k, v in passed.items() if k != "passed"}, "pased": True}
    with pytest.raises(ValidationError, match="passed"):
        route({"gates": {"data": misspelt}})
    state = {"run_id": "r", "run_dir": str(tmp_path), "status": "finished", "gates": {"data": passed}}
    result = result_from_state({**state, "data": {"source": "iris.csv", "task": "regression"}})
    assert result.task == "regression" and result.gates == {"data": True}
    with pytest.raises(ValidationError, match="passed"):
        result_from_state({**state, "gates": {"data": misspelt}})
    # the data result's task misspelt: the run's result said task None
    with pytest.raises(PhaseResultError, match="task"):
        result_from_state({**state, "data": {"source": "iris.csv", "tsk": "regression"}})


def test_the_approval_node_reads_the_run_config(tmp_path) -> None:
    from ml_expert.errors import UsageError
    from ml_expert.graph.approval import approval

    state = {"run_id": "r", "run_dir": str(tmp_path), "options": {"workspace": str(tmp_path)}}
    assert approval(state) == {}  # not asked: nothing to wait for
    # misspelt: `.get("require_approval")` read None and deployed without asking
    with pytest.raises(UsageError, match="require_aproval"):
        approval({**state, "options": {**state["options"], "require_aproval": True}})


def test_the_summary_reads_the_gate_and_status_findings_typed() -> None:
    from ml_expert.memory.summary import build_summary

    findings = {
        "data-analysis": _analysis(),
        "guardrails/data": {"gate": "data", "passed": True, "checks": [], "failed": []},
        "status": {"status": "finished", "reason": None, "phase": "deployment"},
    }
    summary = build_summary("r", findings)
    assert summary.gates == {"data": True} and summary.status == "finished"
    # misspelt: `.get("passed")` read None and the summary said the data gate refused the run
    with pytest.raises(PhaseResultError, match="guardrails/data"):
        build_summary("r", {**findings, "guardrails/data": {"gate": "data", "pased": True}})
    # misspelt: `.get("status")` read None and the outcome was "unknown"
    with pytest.raises(PhaseResultError, match="status"):
        build_summary("r", {**findings, "status": {"staus": "finished", "reason": None}})


def test_the_sequence_columns_are_typed_and_write_the_same_json() -> None:
    from test_typed_records import _data_state

    from ml_expert.phases import DataResult, SelectionResult

    text = {"column": "review", "length": 12, "vocabulary_size": 300, "rule": "words on >= 5 rows"}
    steps = {"column": None, "length": 40, "rule": "the 40 numeric columns are the steps"}  # no vocabulary
    for sequence in (text, steps):
        read = DataResult.of({"data": _data_state(sequence=sequence)})
        assert read.sequence and read.sequence.length == sequence["length"]
        assert json.dumps(read.state()["sequence"]) == json.dumps(sequence)  # the same JSON, in order
        analysis = {**CLUSTERING_ANALYSIS, "sequence": sequence}
        selection = SelectionResult.of({"selection": selection_fields(analysis=analysis)})
        assert json.dumps(selection.state()["analysis"]["sequence"]) == json.dumps(sequence)
    # the researcher read ["length"] and ["vocabulary_size"]: a misspelt key was a KeyError mid-plan
    for broken in ({**text, "lenght": 12}, {k: v for k, v in text.items() if k != "length"}):
        with pytest.raises(PhaseResultError, match="sequence"):
            DataResult.of({"data": _data_state(sequence=broken)})


def test_every_agent_reads_its_options_through_the_run_config(tmp_path) -> None:
    from ml_expert.agents.context import AgentContext
    from ml_expert.errors import UsageError

    # misspelt: the researcher read `options.get("tune")` (None: no search), the registrar
    # `options.get("force")`, the tester `options.get("sensitive")`: each went on with a default.
    # Every node's context now validates the run's options first, naming the unknown one.
    for typo in ("tunes", "forse", "sensitiv"):
        state = {"options": {"workspace": str(tmp_path), typo: True}, "run_id": "r", "run_dir": str(tmp_path)}
        with pytest.raises(UsageError, match=typo):
            AgentContext(state, "researcher", "model_selection")
