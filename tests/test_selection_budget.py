"""The budget becomes counts by a fixed rule; escalation to a network follows a stated rule."""

from __future__ import annotations

from phase_helpers import candidate, selection_fields

from ml_expert.agents.researcher import MIN_BUDGET_FOR_NN, plan_network, room_left
from ml_expert.phases import DataResult
from ml_expert.tools.data.splitting import SplitSizes
from ml_expert.tools.selection.budget import MAX_EPOCHS, MIN_EPOCHS, dense_flops, plan_epochs, safety_cap


def _data(rows: int = 1000, task: str = "classification", modality: str = "tabular") -> DataResult:
    """The fields plan_network reads (model_construct: the files and hashes a run has are not needed)."""
    return DataResult.model_construct(
        **{
            "task": task,
            "modality": modality,
            "image_shape": [8, 8, 1] if modality == "image" else None,
            "split_sizes": SplitSizes(train=rows, val=rows // 5, test=rows // 5),
            "n_features_out": 64 if modality == "image" else 12,
            "train_class_counts": {"0": rows // 2, "1": rows // 2} if task == "classification" else {},
            "imbalance_ratio": 1.0,
        }
    )


def test_epoch_count_is_a_pure_function_of_budget_and_data() -> None:
    flops = dense_flops(12, [64, 32], 2)
    small = plan_epochs(20, 1000, 200, 32, flops)
    assert small == plan_epochs(20, 1000, 200, 32, flops)  # no clock involved
    large = plan_epochs(200, 1000, 200, 32, flops)
    assert MIN_EPOCHS <= small.max_epochs < large.max_epochs <= MAX_EPOCHS
    assert plan_epochs(1, 1000, 200, 32, flops).max_epochs == MIN_EPOCHS
    assert plan_epochs(10_000, 1000, 200, 32, flops).max_epochs == MAX_EPOCHS
    assert f"= {small.max_epochs}" in small.rule
    # the wall-clock cap leaves a reserve of the budget and never goes below a second
    assert safety_cap(100, 20) == 75.0 and safety_cap(10, 50) == 1.0


def test_network_is_planned_only_when_budget_and_figures_leave_room() -> None:
    plan, reason = plan_network(_data(), 60, 0.9, "accuracy", True, None)
    assert plan["train_dnn"] and plan["dnn_config"]["architecture"] == "dense", reason
    assert plan["dnn_config"]["max_epochs"] == plan["epoch_plan"]["max_epochs"]
    assert not plan_network(_data(), 60, 0.9, "accuracy", False, None)[0]["train_dnn"]
    assert not plan_network(_data(), MIN_BUDGET_FOR_NN - 1, 0.9, "accuracy", True, None)[0]["train_dnn"]
    # a perfect score on a large validation split leaves no room; on 20 rows it proves little
    assert not plan_network(_data(rows=5000), 60, 1.0, "accuracy", True, None)[0]["train_dnn"]
    assert room_left(1.0, "accuracy", 20)[0] == 3 / 20
    assert not plan_network(_data(task="regression"), 60, 0.995, "r2", True, None)[0]["train_dnn"]
    image, _ = plan_network(_data(modality="image"), 60, 0.9, "accuracy", True, 0.01)
    assert image["network"] == "Keras CNN" and image["dnn_config"]["image_shape"] == [8, 8, 1]
    assert image["dnn_config"]["learning_rate"] == 0.01


def test_plan_gate_lets_baselines_overrun_but_not_a_network_without_time() -> None:
    from ml_expert.graph.gates import plan_gate
    from ml_expert.tools.selection.candidates import FOREST_SMALL_ROWS, forest_size

    board = [candidate(n) for n in ("dummy", "linear", "random_forest", "hist_gradient_boosting")]
    skipped = selection_fields(leaderboard=board, seconds=45.0, budget=30.0, cap_hit=True)
    verdict = plan_gate({"options": {"budget": 30}, "selection": skipped})
    assert verdict.passed, verdict.failed
    # a selection result that does not match its model (SelectionResult) is refused, field named
    malformed = plan_gate({"options": {"budget": 30}, "selection": {**skipped, "seconds": "soon"}})
    assert not malformed.passed and [c.name for c in malformed.checks] == ["result_typed"]
    assert "seconds" in malformed.checks[0].detail
    check = next(c for c in verdict.checks if c.name == "network_has_budget_left")
    assert check.value == 45.0 and "cap hit" in check.detail
    planned = {
        **skipped,
        "cap_hit": False,
        "plan": {
            "train_dnn": True,
            "dnn_config": {},
            "estimated_flops_per_row": 1e4,
            "estimated_memory_mb": 1,
            "available_memory_mb": 9,
        },
    }
    refused = plan_gate({"options": {"budget": 30}, "selection": planned})
    assert [c.name for c in refused.checks if not c.passed] == ["network_has_budget_left"]
    assert forest_size(FOREST_SMALL_ROWS) == 300 and forest_size(FOREST_SMALL_ROWS + 1) == 100
    from ml_expert.tools.selection.candidates import FOREST_LARGE_ROWS, forest_limits, make_estimator

    assert forest_limits(FOREST_LARGE_ROWS) == {}
    big = make_estimator("random_forest", "classification", 0, rows=FOREST_LARGE_ROWS * 7)
    assert big.max_samples == FOREST_LARGE_ROWS and big.min_samples_leaf == 5 and big.n_estimators == 100


def test_forest_train_score_is_out_of_bag(tmp_path) -> None:
    """A full-depth forest's in-sample R² on noisy diabetes is near 1; its out-of-bag score is the
    honest one, so the overfitting gap does not refuse the model that generalises best."""
    from pathlib import Path

    from ml_expert.tools.data.prepare import load_split, prepare_data
    from ml_expert.tools.scoring import predict_scores, score
    from ml_expert.tools.selection.baselines import run_baselines

    data = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "diabetes.csv"
    prepared = prepare_data(str(data), "target", 2, tmp_path / "data")
    schema = prepared.input_schema
    train, val = (
        load_split(prepared.files, "train", schema, prepared.file_hashes),
        load_split(prepared.files, "val", schema, prepared.file_hashes),
    )
    board = {c.name: c for c in run_baselines(schema, train, val, "r2", 2, tmp_path / "models")}
    forest = board["random_forest"]
    assert forest.train_score_kind == "out-of-bag" and board["linear"].train_score_kind == "in-sample"
    import joblib

    in_sample = score("r2", train[1], predict_scores(joblib.load(forest.path), train[0]))
    assert in_sample > 0.85 and forest.train_score < in_sample - 0.3
    assert abs(forest.train_score - forest.val_score) < 0.3


def test_forest_is_sized_to_its_share_of_the_budget_at_scale() -> None:
    """`--budget 20` on 3M rows: a forest of seconds, not the 145 s the data-only rule planned."""
    from ml_expert.tools.selection.budget import FOREST_SHARE, MIN_TREES, plan_forest
    from ml_expert.tools.selection.candidates import forest_limits, forest_size

    rows = 3_000_000
    plan = plan_forest(20, rows, 20, True, forest_size(rows), forest_limits(rows)["max_samples"])
    assert plan.n_estimators >= MIN_TREES and plan.max_samples is not None and plan.max_samples < 100_000
    assert plan.estimated_seconds <= FOREST_SHARE * 20 * 1.01, plan.rule
    # the data-only rule planned 100 trees of 100k rows each: many times the whole budget
    unplanned = plan_forest(1e9, rows, 20, True, forest_size(rows), forest_limits(rows)["max_samples"])
    assert unplanned.n_estimators == 100 and unplanned.estimated_seconds > 20 * 3
    # the baseline carries that size in its params, so the refit and the folds fit the same forest
    from ml_expert.tools.selection.baselines import forest_params

    assert forest_params(20, rows, 20, "classification") == {
        "n_estimators": plan.n_estimators,
        "max_samples": plan.max_samples,
    }
    assert forest_params(20, 150, 4, "classification") == {}  # small data keeps its full forest


def test_a_gzip_csv_is_read(tmp_path) -> None:
    import gzip
    import shutil
    from pathlib import Path

    from ml_expert.tools.data.loading import load_table

    source = Path(__file__).resolve().parents[1] / "ml_expert" / "datasets" / "iris.csv"
    packed = tmp_path / "data.csv.gz"
    with open(source, "rb") as plain, gzip.open(packed, "wb") as out:
        shutil.copyfileobj(plain, out)
    frame, _ = load_table(str(packed))
    assert frame.shape == (150, 5)


def test_the_plan_gate_takes_the_dummy_and_one_baseline_when_the_cap_stopped_the_others() -> None:
    from ml_expert.graph.gates import plan_gate

    stopped = {
        "name": "random_forest",
        "base": "random_forest",
        "nominal_seconds": 30.0,
        "deadline_seconds": 10.0,
        "seconds": 10.2,
        "started": True,
        "reason": "cap hit",
    }
    board = [candidate("dummy"), candidate("linear")]
    capped = selection_fields(leaderboard=board, best_baseline="linear", stopped=[stopped])
    verdict = plan_gate({"options": {"budget": 60}, "selection": capped})
    assert verdict.passed, verdict
    # without a cap that stopped the others, one baseline is not enough
    plain = selection_fields(leaderboard=board, best_baseline="linear")
    assert not plan_gate({"options": {"budget": 60}, "selection": plain}).passed
    # and never without a baseline
    alone = selection_fields(leaderboard=[candidate("dummy")], best_baseline="dummy", stopped=[stopped])
    assert not plan_gate({"options": {"budget": 60}, "selection": alone}).passed
