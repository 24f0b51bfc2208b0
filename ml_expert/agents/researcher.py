"""The researcher: analyses the task, measures simple baselines first, plans the neural model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ml_expert.agents.context import AgentContext
from ml_expert.tools.data.prepare import load_split
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.environment import available_memory_mb
from ml_expert.tools.scoring import primary_metric
from ml_expert.tools.selection.baselines import run_baselines
from ml_expert.tools.training.dnn import DNNConfig

MIN_SECONDS_FOR_DNN = 5.0


def plan_dnn(data: dict[str, Any], seconds_left: float, wanted: bool) -> tuple[dict[str, Any], str]:
    """Size the network and the batch from the data; train it only when time is left."""
    rows = data["split_sizes"]["train"]
    width = data["n_features_out"]
    if rows < 2_000:
        units, batch, patience = [64, 32], 32, 25
    elif rows < 100_000:
        units, batch, patience = [128, 64], 128, 15
    else:
        units, batch, patience = [256, 128], 512, 8
    class_weight = None
    if data["task"] == "classification" and data.get("imbalance_ratio", 1) >= 3:
        counts = data["train_class_counts"]
        total = sum(counts.values())
        class_weight = {int(k): total / (len(counts) * v) for k, v in counts.items()}
    config = DNNConfig(
        hidden_units=units,
        batch_size=batch,
        patience=patience,
        class_weight=class_weight,
        time_limit_seconds=max(seconds_left, 1.0),
    )
    params = width * units[0] + units[0] * units[1] + units[1] * 10
    memory_mb = (rows * width * 4 * 2 + params * 4 * 4) / 2**20 + 200
    if not wanted:
        train, reason = False, "the neural model was turned off (--no-dnn)"
    elif seconds_left < MIN_SECONDS_FOR_DNN:
        train, reason = False, f"only {seconds_left:.1f} s of the budget left (< {MIN_SECONDS_FOR_DNN} s)"
    else:
        train = True
        reason = (
            f"{seconds_left:.0f} s of budget left; a {units} dense network (batch {batch}, early stopping "
            f"patience {patience}) is cheap at {rows} rows x {width} features and may beat the baselines"
        )
    plan = {
        "train_dnn": train,
        "dnn_config": config.model_dump(),
        "estimated_params": params,
        "estimated_memory_mb": round(memory_mb, 1),
        "available_memory_mb": round(available_memory_mb(), 1),
    }
    return plan, reason


def model_selection(state: dict[str, Any]) -> dict[str, Any]:
    ctx = AgentContext(state, "researcher", "model_selection")
    ctx.start()
    started = time.perf_counter()
    data = state["data"]
    schema = InputSchema.model_validate(data["schema"])
    metric, metric_reason = primary_metric(data["task"], data.get("imbalance_ratio"))
    ctx.decide(f"task is {data['task']}", data["task_reason"])
    ctx.decide(f"rank models by {metric}", metric_reason)
    train = load_split(data["files"], "train", schema)
    val = load_split(data["files"], "val", schema)
    ctx.step("fitting baselines: dummy, linear, random forest, histogram gradient boosting")
    leaderboard = run_baselines(
        schema, train, val, metric, int(state["options"]["seed"]), Path(ctx.run_dir) / "models"
    )
    board = [c.model_dump() for c in leaderboard]
    best = max((c for c in leaderboard if c.name != "dummy"), key=lambda c: c.val_score)
    ctx.decide(
        f"best simple baseline: {best.name}",
        f"validation {metric} {best.val_score:.4f} (dummy {board[0]['val_score']:.4f})",
    )
    seconds = time.perf_counter() - started
    budget = float(state["options"]["budget"])
    plan, reason = plan_dnn(data, budget - seconds, bool(state["options"].get("train_dnn", True)))
    ctx.decide("train a Keras DNN" if plan["train_dnn"] else "skip the Keras DNN", reason)
    selection = {
        "task": data["task"],
        "metric": metric,
        "metric_reason": metric_reason,
        "leaderboard": board,
        "best_baseline": best.name,
        "plan": plan,
        "seconds": round(seconds, 3),
        "budget": budget,
    }
    ctx.record("model-selection", selection)
    ctx.done(f"best baseline {best.name}: {metric} {best.val_score:.4f}")
    return {"selection": selection, "phase": "model_selection"}
