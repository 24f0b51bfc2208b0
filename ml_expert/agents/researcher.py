"""The researcher: analyses the task, measures simple baselines first, plans the neural model.

Every decision is a count derived from the data and the budget by a fixed rule (never a wall-clock
measurement), so the same seed and data give the same plan on any machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ml_expert.agents.context import AgentContext
from ml_expert.execution import ExecutionReport, Executor, executor_for
from ml_expert.tools.data.prepare import load_split
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.environment import available_memory_mb
from ml_expert.tools.scoring import primary_metric
from ml_expert.tools.selection.baselines import (
    CandidateResult,
    balanced_weights,
    fit_candidate,
    run_baselines,
)
from ml_expert.tools.selection.budget import (
    RESERVE_SHARE,
    cnn_flops,
    conv1d_flops,
    dense_flops,
    plan_epochs,
    text_flops,
)
from ml_expert.tools.selection.tuning import CAP_FACTOR, FOLDS, MIN_TRIALS, plan_trials, tune
from ml_expert.tools.training.dnn import DNNConfig
from ml_expert.workspace import update_run

MIN_BUDGET_FOR_NN = 10.0
MIN_ROOM = 0.01


def room_left(best_val: float, metric: str, val_rows: int) -> tuple[float, str]:
    """How far the best baseline may still be from perfect, given what validation can show.

    For accuracy-like metrics a validation score is capped by its sample size: with no error in n
    rows, the 95% upper bound of the error rate is still 3/n (rule of three).
    """
    gap = max(0.0, 1.0 - best_val)
    if metric == "r2":
        return gap, f"1 - R² = {gap:.4f}"
    floor = 3.0 / max(val_rows, 1)
    return max(gap, floor), f"max(1 - {metric} = {gap:.4f}, 3/{val_rows} validation rows = {floor:.4f})"


def analyse_task(data: dict[str, Any]) -> dict[str, Any]:
    """The facts the choice of models rests on, each with the reason it matters."""
    sizes = data["split_sizes"]
    classes = len(data.get("train_class_counts") or {}) or None
    return {
        "task": data["task"],
        "task_reason": data["task_reason"],
        "rows": sizes,
        "features_in": len(data["features"]),
        "features_out": data["n_features_out"],
        "classes": classes,
        "imbalance_ratio": data.get("imbalance_ratio"),
        "modality": data.get("modality", "tabular"),
        "image_shape": data.get("image_shape"),
        "sequence": data.get("sequence"),
    }


def plan_network(
    data: dict[str, Any],
    budget: float,
    best_val: float,
    metric: str,
    wanted: bool,
    learning_rate: float | None,
) -> tuple[dict[str, Any], str]:
    """Size the network from the data, count its epochs from the budget, and decide whether to train it.

    Rule: train it when it is wanted, the budget is at least MIN_BUDGET_FOR_NN seconds, and the best
    baseline leaves at least MIN_ROOM of room (see room_left).
    """
    rows = data["split_sizes"]["train"]
    val_rows = data["split_sizes"]["val"]
    width = data["n_features_out"]
    image = data.get("modality") == "image" and data.get("image_shape")
    sequence = data.get("sequence") if data.get("modality") == "text" else None
    signal = data.get("modality") == "sequence"
    n_out = len(data.get("train_class_counts") or {}) if data["task"] == "classification" else 1
    if image:
        units, batch, patience, filters = [128], 32 if rows < 20_000 else 128, 20, [32, 64]
        flops = cnn_flops(data["image_shape"], filters, units, n_out)
        architecture = "cnn"
    elif signal:
        units, batch, patience, filters = [64], 32 if rows < 20_000 else 128, 20, [32, 64]
        flops = conv1d_flops(width, filters, units, n_out)
        architecture = "sequence"
    elif sequence:
        units, batch, patience, filters = [64], 32 if rows < 20_000 else 128, 20, [64]
        flops = text_flops(sequence["length"], width - sequence["length"], filters[0], units, n_out)
        architecture = "text"
    else:
        filters = []
        if rows < 2_000:
            units, batch, patience = [64, 32], 32, 25
        elif rows < 100_000:
            units, batch, patience = [128, 64], 128, 15
        else:
            units, batch, patience = [256, 128], 512, 8
        flops = dense_flops(width, units, n_out)
        architecture = "dense"
    epochs = plan_epochs(budget, rows, val_rows, batch, flops)
    class_weight = None
    if data["task"] == "classification" and (data.get("imbalance_ratio") or 1) >= 3:
        counts = data["train_class_counts"]
        total = sum(counts.values())
        class_weight = {int(k): total / (len(counts) * v) for k, v in counts.items()}
    config = DNNConfig(
        architecture=architecture,
        image_shape=data.get("image_shape") if image else None,
        sequence_length=sequence["length"] if sequence else None,
        vocabulary_size=sequence["vocabulary_size"] if sequence else None,
        hidden_units=units,
        conv_filters=filters or [32, 64],
        batch_size=batch,
        patience=min(patience, max(3, epochs.max_epochs // 4)),
        max_epochs=epochs.max_epochs,
        class_weight=class_weight,
        learning_rate=learning_rate if learning_rate is not None else 1e-3,
    )
    # Data twice (float32 copies) + a generous 8 bytes per forward FLOP (weights, Adam slots, activations).
    memory_mb = (rows * width * 4 * 2 + flops * 8) / 2**20 + 200
    name = (
        "Keras CNN" if image else "Keras text CNN" if sequence else "Keras 1-D CNN" if signal else "Keras DNN"
    )
    room, room_why = room_left(best_val, metric, val_rows)
    if not wanted:
        train, reason = False, "the neural model was turned off (--no-dnn)"
    elif budget < MIN_BUDGET_FOR_NN:
        train, reason = False, f"budget {budget:g} s < {MIN_BUDGET_FOR_NN:g} s: baselines only"
    elif room < MIN_ROOM:
        train, reason = False, f"the best baseline leaves no room: {room_why} < {MIN_ROOM}"
    else:
        train = True
        reason = (
            f"budget {budget:g} s >= {MIN_BUDGET_FOR_NN:g} s and the best baseline leaves room "
            f"({room_why} >= {MIN_ROOM}): a {name} "
            f"({'conv ' + str(filters) + ' + ' if architecture != 'dense' else ''}dense {units}, "
            f"batch {batch}, "
            f"up to {epochs.max_epochs} epochs, early stopping patience {config.patience})"
        )
    plan = {
        "train_dnn": train,
        "network": name,
        "room": round(room, 6),
        "room_rule": room_why,
        "dnn_config": config.model_dump(),
        "epoch_plan": epochs.model_dump(),
        "estimated_flops_per_row": flops,
        "estimated_memory_mb": round(memory_mb, 1),
        "available_memory_mb": round(available_memory_mb(), 1),
    }
    return plan, reason


def model_selection(state: dict[str, Any]) -> dict[str, Any]:
    ctx = AgentContext(state, "researcher", "model_selection")
    ctx.start()
    started = time.perf_counter()
    data = state["data"]
    options = state["options"]
    schema = InputSchema.model_validate(data["schema"])
    analysis = analyse_task(data)
    metric, metric_reason = primary_metric(data["task"], data.get("imbalance_ratio"))
    ctx.decide(f"task is {data['task']}", data["task_reason"])
    ctx.decide(f"rank models by {metric}", metric_reason)
    if analysis["modality"] == "image":
        ctx.decide(
            f"treat the features as {analysis['image_shape']} images",
            "the pixel layout carries structure a convolutional network can use",
        )
    if analysis["modality"] == "sequence":
        ctx.decide(
            f"treat the {analysis['features_out']} features as the steps of one sequence",
            "asked for (--modality sequence): a 1-D convolution reads local patterns wherever they occur",
        )
    if analysis["modality"] == "text" and analysis["sequence"]:
        seq = analysis["sequence"]
        ctx.decide(
            f"read column {seq['column']!r} as a sequence of {seq['length']} word ids "
            f"({seq['vocabulary_size']} words)",
            'word order carries meaning a bag of words loses ("not good"); ' + seq["rule"],
        )
    train = load_split(data["files"], "train", schema)
    val = load_split(data["files"], "val", schema)
    if metric == "balanced_accuracy":
        ctx.decide(
            "weight classes inversely to their frequency in the baselines",
            "ranked by balanced accuracy: unweighted models learn to predict the majority class",
        )
    connecting = time.perf_counter()
    executor = _executor(ctx, options.get("ray"))
    started += time.perf_counter() - connecting  # starting or joining a cluster is not model selection
    ctx.step("fitting baselines: dummy, linear, random forest, histogram gradient boosting")
    leaderboard = run_baselines(
        schema, train, val, metric, int(options["seed"]), Path(ctx.run_dir) / "models", map_fn=executor.map
    )
    best = max((c for c in leaderboard if c.name != "dummy"), key=lambda c: c.val_score)
    ctx.decide(
        f"best simple baseline: {best.name}",
        f"validation {metric} {best.val_score:.4f} (dummy {leaderboard[0].val_score:.4f})",
    )
    budget = float(options["budget"])
    tuning = None
    if options.get("tune"):
        seed = int(options["seed"])
        tuning, tuned = _search(ctx, data, schema, best.name, train, val, metric, seed, budget, executor)
        if tuned is not None:
            leaderboard.append(tuned)
            best = max((c for c in leaderboard if c.name != "dummy"), key=lambda c: c.val_score)
    board = [c.model_dump() for c in leaderboard]
    seconds = time.perf_counter() - started
    plan, reason = plan_network(
        data,
        budget,
        best.val_score,
        metric,
        bool(options.get("train_dnn", True)),
        options.get("dnn_learning_rate"),
    )
    # Safety stop only (a slow or overloaded machine): counts decide, but a network never starts
    # once the baselines alone have spent the budget. Recorded as a cap hit.
    cap_hit = plan["train_dnn"] and seconds >= budget * (1 - RESERVE_SHARE)
    if cap_hit:
        plan["train_dnn"] = False
        reason = (
            f"cap hit: the baselines took {seconds:.1f} s of the {budget:g} s budget, "
            "no time is left for the network"
        )
    ctx.decide(f"train the {plan['network']}" if plan["train_dnn"] else f"skip the {plan['network']}", reason)
    if plan["train_dnn"]:
        ctx.decide(f"plan {plan['dnn_config']['max_epochs']} epochs", plan["epoch_plan"]["rule"])
    selection = {
        "task": data["task"],
        "analysis": analysis,
        "metric": metric,
        "metric_reason": metric_reason,
        "leaderboard": board,
        "best_baseline": best.name,
        "plan": plan,
        "seconds": round(seconds, 3),
        "cap_hit": cap_hit,
        "baseline_seconds": {c.name: c.fit_seconds for c in leaderboard},
        "budget": budget,
        "tuning": tuning,
        "execution": executor.report.model_dump(),
    }
    ctx.record("model-selection", selection)
    ctx.done(f"best baseline {best.name}: {metric} {best.val_score:.4f}")
    return {"selection": selection, "phase": "model_selection"}


def _search(
    ctx: AgentContext,
    data: dict[str, Any],
    schema: InputSchema,
    name: str,
    train: tuple[Any, Any],
    val: tuple[Any, Any],
    metric: str,
    seed: int,
    budget: float,
    executor: Executor,
) -> tuple[dict[str, Any], CandidateResult | None]:
    """`--tune`: a bounded search of the best baseline's hyperparameters (tools/selection/tuning.py).

    The tuned configuration is fit on train and scored on validation like any baseline, so the
    choice between it and the defaults is made on rows the search never ranked trials on.
    """
    classes = len(data.get("train_class_counts") or {}) or None
    scale = executor.report.plan_scale
    plan = plan_trials(name, len(train[1]), data["n_features_out"], classes, budget, scale=scale)
    record: dict[str, Any] = {"plan": plan.model_dump()}
    if plan.trials < MIN_TRIALS:
        ctx.decide(f"do not tune {name}", f"{plan.rule}: too few trials for a search")
        return {**record, "ran": False}, None
    ctx.decide(f"tune {name}: {plan.trials} configurations, {FOLDS}-fold CV on train", plan.rule)
    ctx.step(f"tuning {name}: {plan.trials} configurations x {FOLDS} folds")
    # Safety stop only (counts decide; a slow machine caps, and that is recorded).
    result = tune(
        name,
        schema,
        train,
        metric,
        seed,
        plan,
        balanced=balanced_weights(metric),
        time_limit=CAP_FACTOR * plan.share_seconds / scale,  # the share is spread over `scale` nodes
        map_fn=executor.map,
    )
    record.update({"ran": True, **result.model_dump()})
    if result.cap_hit:
        ctx.decide(
            f"stop the search after {result.trials_run} of {plan.trials} trials",
            f"cap hit: {result.seconds:.1f} s > {CAP_FACTOR:g} x the planned {plan.share_seconds:.1f} s",
        )
    if result.best_index == 0 or result.best_cv_score is None:
        ctx.decide(
            f"keep {name}'s defaults",
            f"no configuration beat them in {FOLDS}-fold CV ({metric} {result.default_cv_score})",
        )
        return record, None
    tuned = fit_candidate(
        name,
        schema,
        train,
        val,
        metric,
        seed,
        Path(ctx.run_dir) / "models",
        params=result.best_params,
        name=f"{name}_tuned",
    )
    ctx.decide(
        f"add {tuned.name} {result.best_params} to the leaderboard",
        f"{FOLDS}-fold CV {metric} {result.best_cv_score:.4f} > defaults {result.default_cv_score:.4f} "
        f"(trial {result.best_index} of {result.trials_run}); validation {metric} {tuned.val_score:.4f}",
    )
    record["candidate"] = tuned.name
    return record, tuned


def _executor(ctx: AgentContext, address: str | None) -> Executor:
    """This process, or the Ray cluster at `address`: the hardware check and the growth rule are
    decisions of the run; per-task progress goes to run.json (read by `status`) as it happens."""

    def progress(report: ExecutionReport) -> None:
        if report.mode == "local":
            return  # one machine: nothing to add to the run's usual progress
        update_run(ctx.run_dir, execution=report.model_dump())
        ctx.emit(
            "tasks", done=report.tasks_done, in_flight=report.tasks_in_flight, per_node=report.tasks_per_node
        )

    executor = executor_for(address, on_progress=progress)
    cluster = executor.report.cluster
    if cluster is not None:
        ctx.decide(
            f"run the independent fits as Ray tasks on {cluster.address}",
            f"{cluster.nodes} node(s), {cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs, "
            f"{cluster.memory_gb:g} GB memory at the start (Ray {cluster.ray_version}; connected in "
            f"{cluster.connect_seconds:g} s, not counted in the budget); "
            f"a task lost with its worker is retried at most {executor.report.max_retries} times",
        )
        ctx.decide(f"plan the search at {executor.report.plan_scale}x", executor.report.plan_scale_rule)
        update_run(ctx.run_dir, execution=executor.report.model_dump())
    return executor
