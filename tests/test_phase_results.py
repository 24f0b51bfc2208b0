"""The validation and deployment results are typed: a gate refuses one that does not match its model,
naming the field, instead of judging a default; the state keeps them as plain JSON."""

from __future__ import annotations

import json

import pytest
from phase_helpers import CLUSTERING, deployment_result, selection_fields, validation_result

from ml_expert.errors import PhaseResultError
from ml_expert.graph.gates import release_gate, validation_gate
from ml_expert.phases import DeploymentResult, Release, ValidationResult


def test_validation_gate_refuses_a_malformed_result_naming_the_field() -> None:
    assert validation_gate({"options": {}, "validation": validation_result()}).passed
    missing = validation_result()
    del missing["test_score"]  # a gate used to read it as None and fail beats_dummy_baseline vaguely
    renamed = {**validation_result(), "test_reads_count": 1}  # a renamed key is refused, not defaulted
    del renamed["test_reads"]
    for broken, field in ((missing, "test_score"), (renamed, "test_reads")):
        verdict = validation_gate({"options": {}, "validation": broken})
        assert not verdict.passed and [c.name for c in verdict.checks] == ["result_typed"]
        assert field in verdict.checks[0].detail
    absent = validation_gate({"options": {}})
    assert [c.name for c in absent.checks] == ["result_typed"] and "missing" in absent.checks[0].detail


def test_validation_gate_refuses_a_malformed_versus_dummy_naming_the_field() -> None:
    versus = {
        "metric": "accuracy",
        "simple": "dummy",
        "candidate": "linear",
        "scheme": "bootstrap over 800 test rows",
        "simple_score": 0.94,
        "candidate_score": 0.93,
        "gain": -0.01,
        "standard_error": 0.01,
        "margin": 0.02,
        "wins": False,
        "rule": "linear accuracy 0.9300 vs dummy 0.9400: gain -0.0100 <= margin 0.0200",
    }
    tie = validation_result(test_score=0.93, dummy_test_score=0.94, versus_dummy=versus)
    assert tie["versus_dummy"] == versus  # the state keeps the escalation as plain JSON
    checks = {c.name: c for c in validation_gate({"options": {}, "validation": tie}).checks}
    assert checks["beats_dummy_baseline"].passed and versus["rule"] in checks["beats_dummy_baseline"].detail
    no_gain = {k: v for k, v in versus.items() if k != "gain"}  # a tie used to be judged on a default
    renamed = {**no_gain, "gain_": -0.01}
    for broken in (no_gain, renamed):
        verdict = validation_gate({"options": {}, "validation": {**tie, "versus_dummy": broken}})
        assert not verdict.passed and [c.name for c in verdict.checks] == ["result_typed"]
        assert "versus_dummy.gain" in verdict.checks[0].detail


def test_plan_gate_refuses_a_malformed_network_plan_naming_the_field() -> None:
    from ml_expert.graph.gates import plan_gate
    from ml_expert.phases import SelectionResult

    selection = selection_fields()
    plan = {
        "train_dnn": True,
        "network": "Keras DNN",
        "room": None,  # a loss's infinite room, as JSON wrote it
        "dnn_config": {"hidden_units": [64, 32], "batch_size": 32, "max_epochs": 40},
        "estimated_flops_per_row": 1e4,
        "estimated_memory_mb": 210.0,
        "available_memory_mb": 9000.0,
    }
    state = {"options": {"budget": 60}, "selection": {**selection, "plan": plan}}
    assert plan_gate(state).passed
    read = SelectionResult.of(state)
    assert read.plan.config.max_epochs == 40 and read.state()["plan"] == plan  # the keys it was given
    no_config = {k: v for k, v in plan.items() if k != "dnn_config"}  # training would fail on a KeyError
    bad_config = {**plan, "dnn_config": {**plan["dnn_config"], "batch_size": "big"}}
    no_memory = {k: v for k, v in plan.items() if k != "estimated_memory_mb"}  # judged on a default of 0
    for broken, field in (
        (no_config, "dnn_config"),
        (bad_config, "batch_size"),
        (no_memory, "estimated_memory_mb"),
    ):
        verdict = plan_gate({**state, "selection": {**selection, "plan": broken}})
        assert not verdict.passed and [c.name for c in verdict.checks] == ["result_typed"]
        assert "plan" in verdict.checks[0].detail and field in verdict.checks[0].detail
    # clustering plans no network and says why: nothing else is needed
    clustering = {"train_dnn": False, "network": None, "reason": "clustering: no label"}
    assert SelectionResult.of({"selection": {**selection, "plan": clustering}}).state()["plan"] == clustering


def test_release_gate_refuses_a_malformed_deployment_or_validation_naming_the_field(tmp_path) -> None:
    state = {"options": {"workspace": str(tmp_path)}, "data": {}, "validation": validation_result()}
    good = release_gate({**state, "deployment": deployment_result()})
    assert [c.name for c in good.checks][0] != "result_typed"  # judged (and refused: no package)
    no_latency = deployment_result()
    del no_latency["package_latency"]
    bad_export = {**deployment_result(), "exports": [{"format": "onnx", "parity": {"passed": True}}]}
    figures = {
        "single_row_calls": 20,
        "p50_ms": 1.0,
        "p95_ms": 2.0,
        "batch_rows": 50,
        "batch_rows_per_second": 9e3,
    }
    no_p99 = deployment_result(package_latency={**figures, "p99_ms": 3.0})
    no_p99["package_latency"] = figures  # the gate used to read it by key and fail with a KeyError
    for broken, field in (
        (no_latency, "package_latency"),
        (bad_export, "path"),
        (no_p99, "package_latency.p99_ms"),
    ):
        verdict = release_gate({**state, "deployment": broken})
        assert not verdict.passed and [c.name for c in verdict.checks] == ["result_typed"]
        assert "deployment result" in verdict.checks[0].detail and field in verdict.checks[0].detail
    verdict = release_gate({**state, "deployment": deployment_result(), "validation": {"model": "linear"}})
    assert [c.name for c in verdict.checks] == ["result_typed"]
    assert "primary_metric" in verdict.checks[0].detail


def test_results_stay_plain_json_with_the_keys_their_agent_wrote() -> None:
    # a clustering validation sets no calibration nor fairness: its state (and finding) holds none
    clustering = validation_result(clustering=CLUSTERING, profiles_path="p.json")
    assert "calibration" not in clustering and "fairness" not in clustering
    assert json.loads(json.dumps(clustering)) == clustering
    assert ValidationResult.of({"validation": clustering}).state() == clustering
    # the registrar adds the release to the deployment result it read
    deployment = DeploymentResult.of({"deployment": deployment_result(package_dir="/p")})
    release = Release(model_name="iris", version="v2", aliases={"production": "v2"}, registry="/ws")
    released = deployment.model_copy(update={"registry": release}).state()
    assert released["registry"]["version"] == "v2" and json.loads(json.dumps(released)) == released
    # a finding carries the phase's decisions next to the result; they are not part of it
    finding = {**released, "decisions": [{"decision": "package", "reason": "onnx"}]}
    assert DeploymentResult.from_finding(finding).registry == release
    with pytest.raises(PhaseResultError, match="package_dir"):
        DeploymentResult.from_finding({k: v for k, v in finding.items() if k != "package_dir"})
    with pytest.raises(PhaseResultError, match="no package"):
        _ = DeploymentResult.of({"deployment": deployment_result()}).package


def test_validation_gate_judges_a_clustering_result_by_its_own_figures() -> None:
    chance = {"reference": "permuted", "observed": 0.59, "null_mean": 0.23, "null_max": 0.25}
    found = {
        "chance": [{**chance, "p_value": 0.025, "passed": True}],
        "sizes_ok": True,
        "sizes_detail": "2 clusters; smallest holds 32 training rows",
        "train_sizes": [71, 32],
        "test_sizes": [15, 8],
        "expected_test_sizes": [15.2, 7.8],
        "stability": 1.0,
    }
    clustering = validation_result(
        primary_metric="silhouette",
        test_score=0.57,
        dummy_test_score=0.0,
        clustering=found,
        profiles_path="p",
    )
    checks = {c.name: c for c in validation_gate({"options": {}, "validation": clustering}).checks}
    chance_check = checks["better_than_chance_permuted"]
    assert chance_check.passed and chance_check.value == 0.025
    assert checks["cluster_sizes"].passed and checks["stability"].passed
    # a supervised result has no clustering figures, so none of these checks
    supervised = validation_gate({"options": {}, "validation": validation_result()})
    assert "stability" not in {c.name for c in supervised.checks}


def _training(tmp_path, **fields) -> dict:
    """The state's `training`: a linear model that ships over a network that lost to it."""
    from phase_helpers import candidate, network_record

    from ml_expert.hashing import sha256_file

    model = tmp_path / "linear.joblib"
    model.write_bytes(b"model")
    chosen = candidate("linear", path=str(model), sha256=sha256_file(model))
    dnn = network_record(
        history={"loss": [0.9, 0.5]}, candidate=candidate("dnn", kind="keras", family="neural")
    )
    base = {
        "dnn": dnn,
        "chosen": chosen,
        "choice_reason": "the noise rule",
        "leaderboard": [chosen, dnn["candidate"]],
    }
    return base | fields


def test_training_gate_refuses_a_malformed_chosen_network_or_escalation_naming_the_field(tmp_path) -> None:
    from ml_expert.graph.gates import training_gate

    good = _training(tmp_path)
    assert training_gate({"training": good, "retries": {}}).passed
    no_kind = {k: v for k, v in good["chosen"].items() if k != "kind"}  # was judged as "not a network"
    no_score = {k: v for k, v in good["chosen"].items() if k != "val_score"}
    no_reason = {k: v for k, v in good["dnn"].items() if k != "stopped_reason"}
    bad_loss = {**good["dnn"], "history": {"loss": ["diverging"]}}
    escalation = {"metric": "accuracy", "simple": "linear", "candidate": "dnn", "wins": False, "rule": "tie"}
    for broken, field in (
        ({"chosen": no_kind}, "chosen.kind"),
        ({"chosen": no_score}, "chosen.val_score"),
        ({"dnn": no_reason}, "dnn.stopped_reason"),
        ({"dnn": bad_loss}, "dnn.history.loss"),
        ({"network_escalation": escalation}, "network_escalation.gain"),
        ({"time": {"budget_seconds": 60.0, "cap_hit": False}}, "time.total_seconds"),
        ({"fine_tuning": {"parent": "v1"}}, "fine_tuning.parent_model"),
    ):
        verdict = training_gate({"training": {**good, **broken}, "retries": {}})
        assert not verdict.passed and [c.name for c in verdict.checks] == ["result_typed"], broken
        assert "training result" in verdict.checks[0].detail and field in verdict.checks[0].detail


def test_plan_gate_refuses_a_malformed_leaderboard_escalation_or_tuning_naming_the_field() -> None:
    from phase_helpers import candidate

    from ml_expert.graph.gates import plan_gate

    good = selection_fields()
    assert plan_gate({"options": {"budget": 60}, "selection": good}).passed
    unscored = [*good["leaderboard"][:2], {"name": "random_forest", "kind": "sklearn"}]
    escalation = {"metric": "accuracy", "simple": "linear", "candidate": "random_forest", "gain": 0.01}
    for broken, field in (
        ({"leaderboard": unscored}, "leaderboard.2.val_score"),
        ({"escalations": [escalation]}, "escalations.0.margin"),
        ({"tuning": {"plan": {}, "ran": True, "trials_run": "all"}}, "tuning.trials_run"),
        ({"leaderboard": [*good["leaderboard"], {**candidate("svm"), "kind": "onnx"}]}, "leaderboard.3.kind"),
    ):
        verdict = plan_gate({"options": {"budget": 60}, "selection": {**good, **broken}})
        assert not verdict.passed and [c.name for c in verdict.checks] == ["result_typed"], broken
        assert field in verdict.checks[0].detail


def test_training_and_selection_records_round_trip_through_json_as_written(tmp_path) -> None:
    import math

    from phase_helpers import candidate, network_record

    from ml_expert.memory.base import dumps
    from ml_expert.phases import SelectionResult, TrainingResult

    # a diverged network's NaN loss stays NaN in the state (the checkpointer keeps Python floats)
    diverged = network_record(diverged=True, history={"loss": [0.9, math.nan]}, best_val_loss=math.nan)
    state = _training(tmp_path, diverged_network={**diverged, "discarded": "diverged on 3 attempts"})
    read = TrainingResult.of({"training": state})
    written = read.state()
    assert list(written) == list(state) and list(written["chosen"]) == list(state["chosen"])
    assert "time" not in written and "network_escalation" not in written  # only the keys it was given
    assert math.isnan(written["diverged_network"]["history"]["loss"][1])
    # the finding is strict JSON: NaN is written null and read back as NaN
    finding = json.loads(dumps({**written, "decisions": [{"decision": "d", "reason": "r"}]}))
    assert finding["diverged_network"]["best_val_loss"] is None
    again = TrainingResult.from_finding(finding)
    assert math.isnan(again.diverged_network.best_val_loss) and again.chosen == read.chosen
    # the selection's state is JSON: a non-finite score is null there, as before, and reads back
    board = [*selection_fields()["leaderboard"], candidate("linear_log", val_score=math.inf, cv_folds=[0.1])]
    selection = SelectionResult.of({"selection": selection_fields(leaderboard=board)}).state()
    assert selection["leaderboard"][-1] == {**board[-1], "val_score": None}
    assert math.isnan(SelectionResult.of({"selection": selection}).leaderboard[-1].val_score)
    assert json.loads(json.dumps(selection)) == selection
