"""The ml-developer: prepares the data, trains the neural model, exports and packages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ml_expert.agents import clustering
from ml_expert.agents.context import AgentContext
from ml_expert.config import RunConfig
from ml_expert.hashing import sha256_file, verify
from ml_expert.runs import RunFile
from ml_expert.tools.data.prepare import load_split, prepare_data
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.data.splits import read_array, read_frame
from ml_expert.tools.environment import package_versions
from ml_expert.tools.scoring import score


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def data_preparation(state: dict[str, Any]) -> dict[str, Any]:
    ctx = AgentContext(state, "ml-developer", "data_preparation")
    ctx.start()
    config = RunConfig.of(state)
    ctx.step(f"loading {config.data or 'the demo dataset'}")
    prepared = prepare_data(
        config.data,
        config.target,
        config.seed,
        ctx.run_dir / "data",
        modality=config.modality,
        keep=config.keep,
        drop=config.drop,
        metric=config.metric,
        task=config.task,
    )
    ctx.decide(f"modality is {prepared.modality}", prepared.modality_reason)
    schema = prepared.input_schema
    if config.from_:
        from ml_expert.agents.finetuning import check_schema

        released = check_schema(config.from_, config.workspace, schema)
        ctx.decide(
            f"start from {released.version} ({released.model}, run {released.run_id})",
            "--from: the new data has the released model's columns, kinds and classes",
        )
    for name, why in prepared.dropped_columns.items():
        ctx.decide(f"drop column {name!r}", why)
    for name, why in prepared.kept_columns.items():
        ctx.decide(f"keep column {name!r}", f"--keep overrides the heuristic that would drop it ({why})")
    if prepared.duplicates_removed:
        ctx.decide(
            f"remove {prepared.duplicates_removed} duplicate rows",
            "before the split, so no row is in two splits",
        )
    for name, parts in prepared.datetime_columns.items():
        ctx.decide(f"turn datetime column {name!r} into {', '.join(parts)}", "models take numbers, not dates")
    codes = prepared.composite_codes
    for column in codes.columns if codes else []:
        verb = "split" if codes.kept else "do not split"
        ctx.decide(f"{verb} composite code column {column.name!r} at {column.separator!r}", column.rule)
    if codes:  # the parts are measured together: one verdict for all of them
        ctx.decide(f"composite-code parts {'kept' if codes.kept else 'dropped'}", codes.rule)
    if prepared.outliers.get("action"):
        ctx.decide(f"outliers: {prepared.outliers['action']}", prepared.outliers.get("rule", "images"))
    ctx.decide(
        "fit imputation, scaling, rare-category grouping and one-hot encoding on the training split only",
        "statistics from validation or test rows would leak into the model",
    )
    train_y = load_split(prepared.files, "train", schema, prepared.file_hashes)[1]
    counts: dict[str, int] = {}
    if prepared.task == "classification":
        values, freq = np.unique(train_y, return_counts=True)
        counts = {str(int(v)): int(c) for v, c in zip(values, freq, strict=True)}
    data = {
        "source": prepared.source,
        "fingerprint": prepared.fingerprint,
        "task": prepared.task,
        "task_reason": prepared.task_reason,
        "modality": prepared.modality,
        "image_shape": prepared.image_shape,
        "sequence": prepared.sequence,
        "schema": schema.model_dump(),
        "features": schema.names,
        "n_features_out": prepared.n_features_out,
        "dropped_columns": prepared.dropped_columns,
        "leakage_suspects": prepared.leakage_suspects,
        "kept_columns": prepared.kept_columns,
        "rows_in": prepared.rows_in,
        "duplicates_removed": prepared.duplicates_removed,
        "rows_without_target": prepared.rows_without_target,
        "outliers_removed": int(prepared.outliers.get("dropped", 0)),
        "outliers": prepared.outliers,
        "split_sizes": prepared.split_sizes,
        "splits_disjoint": prepared.splits_disjoint,
        "classes": schema.classes,
        "train_class_counts": counts,
        "imbalance_ratio": prepared.profile.get("imbalance_ratio"),
        "load": prepared.load.model_dump(exclude_none=True) if prepared.load else {},
        "files": prepared.files,
        "file_hashes": prepared.file_hashes,
        "preprocessor_sha256": sha256_file(prepared.files["preprocessor"]),
    }
    finding = {k: v for k, v in data.items() if k not in ("files", "schema")}
    finding["profile"] = prepared.profile
    finding["findings"] = prepared.findings
    finding["columns"] = [
        {
            "name": c.name,
            "kind": c.kind,
            **({"derive": c.derive} if c.derive else {}),
            **({"word": c.word} if c.word else {}),
            **({"position": c.position} if c.position is not None else {}),
        }
        for c in schema.columns
    ]
    ctx.record("data-analysis", finding)
    ctx.done(f"{prepared.task}, {sum(prepared.split_sizes.values())} rows, {len(schema.columns)} features")
    return {"data": data, "phase": "data_preparation"}


MAX_TRAINING_RETRIES = 2
RETRY_LR_FACTOR = 0.1
RETRY_CLIP_FACTOR = 0.5
# On a GPU the batch grows by this factor (capped): small batches leave it idle.


def training(state: dict[str, Any]) -> dict[str, Any]:
    """Train the planned network (if any) and choose the winner on validation.

    A diverged network is retried by the graph (lower learning rate, tighter clipping) at most
    MAX_TRAINING_RETRIES times; after that it is discarded and the best baseline ships.
    """
    if clustering.is_clustering(state):
        return clustering.training(state)
    ctx = AgentContext(state, "ml-developer", "training")
    ctx.start()
    data, selection = state["data"], state["selection"]
    schema = InputSchema.model_validate(data["schema"])
    metric = selection["metric"]
    leaderboard = list(selection["leaderboard"])
    result: dict[str, Any] = {}
    plan = selection["plan"]
    previous = (state.get("training") or {}).get("diverged_network") or {}
    attempt = int((state.get("retries") or {}).get("training", 0))
    if previous and not previous.get("discarded"):
        attempt += 1  # the graph routed back here after a divergence
    if plan["train_dnn"]:
        dnn = _train_dnn(ctx, state, schema, metric, attempt)
        losses = [v for v in dnn["history"].get("loss", []) if v == v]
        if not dnn["diverged"] and dnn.get("cap_hit") and (len(losses) < 2 or min(losses) >= losses[0]):
            # A wall-clock cap (an overloaded machine) stopped it before its loss could decrease:
            # nothing was learnt to compare, so the best candidate ships (no retry, no refusal).
            result["network_cut_short"] = {k: v for k, v in dnn.items() if k not in ("summary", "candidate")}
            ctx.decide(
                "discard the neural network",
                f"the wall-clock cap stopped it after {len(losses)} epoch(s) without a decreasing loss "
                f"({dnn['stopped_reason']}); the best candidate ships",
            )
        elif not dnn["diverged"]:
            result["dnn"] = dnn
            leaderboard.append(dnn["candidate"])
        else:
            # Kept apart from "dnn": nothing downstream may export or score a diverged network.
            result["diverged_network"] = dnn
            if attempt >= MAX_TRAINING_RETRIES:
                dnn["discarded"] = (
                    f"diverged on {attempt + 1} attempts (the last {attempt} with lower learning rates)"
                )
                ctx.decide(
                    "discard the neural network", dnn["discarded"] + "; the best baseline ships instead"
                )
            else:
                ctx.decide(
                    "retry training with a lower learning rate and tighter clipping",
                    f"attempt {attempt + 1} diverged ({dnn['stopped_reason']}) at learning rate "
                    f"{dnn['config']['learning_rate']:g}; retry {attempt + 1} of {MAX_TRAINING_RETRIES}",
                )
    chosen, reason, verdict = _choose(selection, result.get("dnn"), state, schema)
    if verdict is not None:
        result["network_escalation"] = verdict
    if RunConfig.of(state).from_:
        from ml_expert.agents.finetuning import candidates, compete

        released, result["fine_tuning"] = candidates(ctx, state, schema, metric)
        leaderboard += released
        chosen, reason = compete(metric, chosen, reason, released)
    ctx.decide(f"choose {chosen['name']}", reason)
    retrying = "diverged_network" in result and not result["diverged_network"].get("discarded")
    if (
        chosen["kind"] == "sklearn"
        and chosen["name"] != "dummy"
        and not retrying
        and not chosen.get("parent")
    ):
        chosen = _refit(ctx, state, schema, chosen)
    elif chosen["kind"] == "keras" and result.get("dnn"):
        chosen = _refit_network(ctx, state, schema, chosen, result["dnn"])
    result.update(
        {
            "chosen": chosen,
            "choice_reason": reason,
            "leaderboard": leaderboard,
            "attempt": attempt,
            "time": _time_spent(
                selection,
                result.get("dnn") or result.get("diverged_network") or result.get("network_cut_short"),
                chosen,
            ),
        }
    )
    finding = {k: v for k, v in result.items() if k not in ("dnn", "diverged_network")}
    for key in ("dnn", "diverged_network"):
        if key in result:
            finding[key] = {k: v for k, v in result[key].items() if k not in ("summary",)}
    ctx.record("training", finding)
    ctx.done(f"chosen {chosen['name']} ({metric} {chosen['val_score']:.4f} on validation)")
    # A refused training gate before a retry left status "refused": this attempt starts clean.
    return {
        "training": result,
        "phase": "training",
        "retries": {"training": attempt},
        "status": "running",
        "reason": None,
    }


def _choose(
    selection: dict[str, Any], dnn: dict[str, Any] | None, state: dict[str, Any], schema: InputSchema
) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """The researcher's best candidate, unless the network beats it by more than the noise margin.

    The network was fit on train with early stopping on validation, so it is compared with the
    candidate's train-only fit on the validation rows (bootstrap margin, tools/selection/noise.py).
    """
    from ml_expert.tools.selection.noise import escalation

    metric = selection["metric"]
    best = next(c for c in selection["leaderboard"] if c["name"] == selection["best_baseline"])
    reason = next(
        (e["rule"] for e in reversed(selection.get("escalations") or []) if e["candidate"] == best["name"]),
        None,
    ) or (
        f"best {metric} among the baselines: "
        + (
            f"{selection['comparison']['folds']}-fold CV {best['cv_mean']:.4f} ± {best['cv_std']:.4f}"
            if best.get("cv_mean") is not None
            else f"validation {best['val_score']:.4f}"
        )
    )
    if not dnn:
        return best, reason, None
    y_val = load_split(state["data"]["files"], "val", schema, state["data"].get("file_hashes"))[1]
    verdict = escalation(
        metric,
        y_val,
        np.load(best["val_predictions"]),
        np.load(dnn["candidate"]["val_predictions"]),
        seed=int(state["options"]["seed"]),
        simple_threshold=best.get("threshold"),
        simple=best["name"],
        candidate="dnn",
    )
    if verdict.wins:
        return dnn["candidate"], verdict.rule, verdict.model_dump()
    return best, verdict.rule + "; ties go to the simpler model", verdict.model_dump()


def _refit(ctx: AgentContext, state: dict[str, Any], schema: InputSchema, chosen: dict[str, Any]) -> dict:
    """Refit the chosen scikit-learn family on train + validation once the choice is made."""
    from ml_expert.tools.selection.baselines import CandidateResult, refit_on_train_and_val

    files = state["data"]["files"]
    refit = refit_on_train_and_val(
        chosen["name"],
        schema,
        load_split(files, "train", schema, state["data"].get("file_hashes")),
        load_split(files, "val", schema, state["data"].get("file_hashes")),
        int(state["options"]["seed"]),
        ctx.run_dir / "models",
        base=chosen.get("base"),
        settings=CandidateResult.model_validate(chosen).settings(),
    )
    ctx.decide(
        f"refit {chosen['name']} on train + validation ({refit['rows']} rows)",
        "the choice was made on held-out validation; the shipped model then learns from every row "
        "but the test split. Its validation and train figures are those of the train-only fit.",
    )
    return {
        **chosen,
        "path": refit["path"],
        "sha256": refit["sha256"],
        "refit": {
            **refit,
            "on": "train+val",
            "selected_path": chosen["path"],
            "selected_sha256": chosen["sha256"],
        },
    }


def _refit_network(
    ctx: AgentContext, state: dict[str, Any], schema: InputSchema, chosen: dict[str, Any], dnn: dict[str, Any]
) -> dict[str, Any]:
    """The winning network again, from scratch, on train + validation for its best epoch count."""
    _quiet_tensorflow()
    from ml_expert.tools.training.dnn import DNNConfig, float32_copy, refit_dnn, with_target_scale

    data = state["data"]
    task = data["task"]
    config = DNNConfig.model_validate(dnn["config"])
    x = np.concatenate(
        [
            read_array(data["files"]["X_train"], data.get("file_hashes"), "X_train"),
            read_array(data["files"]["X_val"], data.get("file_hashes"), "X_val"),
        ]
    )
    files = data["files"]
    y = np.concatenate(
        [
            load_split(files, "train", schema, state["data"].get("file_hashes"))[1],
            load_split(files, "val", schema, state["data"].get("file_hashes"))[1],
        ]
    )
    if task == "regression":  # the train split's scale, as the measured network learnt it
        y = (y - dnn["target_mean"]) / dnn["target_std"]
    n_outputs = len(schema.classes or []) if task == "classification" else 1
    seed = int(state["options"]["seed"]) + int(dnn.get("attempt", 0))
    epochs = int(dnn["best_epoch"])
    ctx.step(f"refitting the network on train + validation ({len(y)} rows, {epochs} epochs)")
    model, refit = refit_dnn(x, y.astype("float32"), task, n_outputs, config, seed, epochs)
    if refit["diverged"]:
        ctx.decide(
            "ship the train-only network",
            f"its refit on train + validation did not finish {epochs} finite epochs",
        )
        return {**chosen, "refit": {**refit, "on": "none"}}
    model = float32_copy(model, x.shape[1], task, n_outputs, config, seed)
    if task == "regression":
        model = with_target_scale(model, dnn["target_mean"], dnn["target_std"], name=f"{model.name}_served")
    path = ctx.run_dir / "models" / "dnn_train_val.keras"
    model.save(path)
    ctx.decide(
        f"refit the network on train + validation ({refit['rows']} rows) for {epochs} epochs",
        "the best epoch early stopping found on validation; the shipped network then learns from "
        "every row but the test split. Its validation and train figures are those of the train-only fit.",
    )
    return {
        **chosen,
        "path": str(path),
        "sha256": sha256_file(path),
        "refit": {
            **refit,
            "on": "train+val",
            "selected_path": chosen["path"],
            "selected_sha256": chosen["sha256"],
        },
    }


def _time_spent(
    selection: dict[str, Any], dnn: dict[str, Any] | None, chosen: dict[str, Any]
) -> dict[str, Any]:
    """How the budget was spent: baselines, the network, the refit, the total, and whether a cap fired."""
    budget = float(selection["budget"])
    nn_seconds = float(dnn["train_seconds"]) if dnn else 0.0
    refit_seconds = float((chosen.get("refit") or {}).get("fit_seconds", 0.0))
    total = float(selection["seconds"]) + nn_seconds + refit_seconds
    tuning = selection.get("tuning") or {}
    return {
        "budget_seconds": budget,
        "model_selection_seconds": selection["seconds"],
        "cv_folds": (selection.get("comparison") or {}).get("folds"),
        "candidates": [c["name"] for c in selection["leaderboard"]],
        "baseline_fit_seconds": selection.get("baseline_seconds", {}),
        "tuning_seconds": float(tuning.get("seconds", 0.0)),
        "tuning_trials_run": int(tuning.get("trials_run") or 0),
        "tuning_trials_planned": int(tuning.get("trials_planned") or 0) if tuning.get("ran") else 0,
        "network_seconds": nn_seconds,
        "network_epochs_planned": dnn["config"]["max_epochs"] if dnn else 0,
        "network_epochs_run": dnn["epochs_trained"] if dnn else 0,
        "refit_seconds": refit_seconds,
        "total_seconds": round(total, 3),
        "share_of_budget": round(total / budget, 3) if budget else None,
        "cap_hit": bool(dnn and dnn["cap_hit"]) or bool(tuning.get("cap_hit")),
    }


def _train_dnn(
    ctx: AgentContext, state: dict[str, Any], schema: InputSchema, metric: str, attempt: int
) -> dict[str, Any]:
    _quiet_tensorflow()
    import keras

    from ml_expert.tools.selection.budget import safety_cap
    from ml_expert.tools.training.checkpoints import load_verified
    from ml_expert.tools.training.curves import plot_curves
    from ml_expert.tools.training.dnn import (
        DNNConfig,
        build_dnn,
        float32_copy,
        save_history,
        standardise_target,
        train_dnn,
        with_target_scale,
    )
    from ml_expert.tools.training.hardware import UtilisationSampler, free_gpu_memory_mb, hardware_check
    from ml_expert.tools.training.throughput import plan_execution

    data, selection = state["data"], state["selection"]
    seed = int(state["options"]["seed"])
    config = DNNConfig.model_validate(selection["plan"]["dnn_config"])
    if attempt:
        config = config.model_copy(
            update={
                "learning_rate": config.learning_rate * RETRY_LR_FACTOR**attempt,
                "clipnorm": config.clipnorm * RETRY_CLIP_FACTOR**attempt,
            }
        )
    config = config.model_copy(
        update={"time_limit_seconds": safety_cap(float(selection["budget"]), float(selection["seconds"]))}
    )
    hardware = hardware_check()
    ctx.decide(
        f"train on {hardware['device_used']}",
        f"{hardware['backend']} backend; {len(hardware['gpus'])} GPU(s) found; "
        f"{hardware['available_memory_mb']:.0f} MB memory available",
    )
    gpu = bool(hardware["gpus"])
    if gpu and not config.mixed_precision:
        config = config.model_copy(update={"mixed_precision": True})
        ctx.decide(
            "mixed precision (float16 compute, float32 weights) on the GPU",
            "half the memory traffic per step; the served model is rebuilt in float32",
        )
    x_train = read_array(data["files"]["X_train"], data.get("file_hashes"), "X_train")
    x_val = read_array(data["files"]["X_val"], data.get("file_hashes"), "X_val")
    execution = plan_execution(
        backend=hardware["backend"],
        gpu=gpu,
        rows=len(x_train),
        data_bytes=int(x_train.nbytes + x_val.nbytes),
        forward_flops=float(selection["plan"]["estimated_flops_per_row"]),
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        free_gpu_memory_mb=free_gpu_memory_mb() if gpu else None,
        class_weighted=bool(config.class_weight),
    )
    config = config.model_copy(
        update={
            "batch_size": execution.batch_size,
            "learning_rate": execution.learning_rate,
            "steps_per_execution": execution.steps_per_execution,
            "jit_compile": execution.jit_compile,
            "data_on_device": execution.data_on_device,
        }
    )
    ctx.decide(
        f"batch {execution.batch_size}, {execution.steps_per_execution} steps per call on the "
        f"{execution.device.upper()}",
        "; ".join(execution.rules),
    )
    y_train = load_split(data["files"], "train", schema, data.get("file_hashes"))[1]
    y_val = load_split(data["files"], "val", schema, data.get("file_hashes"))[1]
    task = data["task"]
    mean = std = None
    if task == "regression":
        fit_train, fit_val, mean, std = standardise_target(y_train, y_val)
        ctx.decide("standardise the regression target for the DNN", f"train mean {mean:.4g}, std {std:.4g}")
    else:
        fit_train, fit_val = y_train, y_val
    n_outputs = len(schema.classes or []) if task == "classification" else 1
    model = build_dnn(x_train.shape[1], task, n_outputs, config, seed + attempt)
    label = "CNN" if config.architecture == "cnn" else "DNN"
    ctx.step(
        f"training a Keras {label} ({model.count_params()} parameters, up to {config.max_epochs} epochs, "
        f"learning rate {config.learning_rate:g}, attempt {attempt + 1})"
    )
    out_dir = ctx.run_dir / "checkpoints" / f"attempt-{attempt}"
    workers = int(state["options"].get("workers") or 1)
    with UtilisationSampler(enabled=bool(hardware["gpus"]) and workers == 1) as sampler:
        if workers > 1:
            arrays = (x_train, fit_train, x_val, fit_val)
            result = _train_on_workers(ctx, state, model, arrays, config, n_outputs, seed + attempt, out_dir)
        else:
            result = train_dnn(
                model,
                x_train,
                fit_train.astype("float32"),
                x_val,
                fit_val.astype("float32"),
                config,
                out_dir,
                on_epoch=lambda epoch, total, logs: ctx.emit("epoch", epoch=epoch, total=total, logs=logs),
                task=task,
            )
    hardware["gpu_utilisation"] = sampler.summary()
    for fallback in result.execution_fallbacks:
        ctx.decide(f"train without {fallback['dropped']}", f"the device refused it: {fallback['error']}")
    if result.initial_epoch:
        ctx.decide(
            f"resume training at epoch {result.initial_epoch + 1}",
            "a backup from an interrupted run was found (BackupAndRestore)",
        )
    for oom in result.oom_retries:
        ctx.decide(
            f"halve the batch to {oom['new_batch_size']} with {oom['gradient_accumulation_steps']} "
            "gradient accumulation steps",
            f"{oom['error']} at batch {oom['batch_size']}; the effective batch stays the same",
        )
    if result.cap_hit:
        ctx.decide("stop training at the wall-clock cap", result.stopped_reason)
    history_path = ctx.run_dir / "training_history.json"
    save_history(
        {**result.history, "gpu_utilisation": sampler.samples, "execution": execution.model_dump()},
        history_path,
    )
    curves_path = ctx.run_dir / "training_curves.png"
    plot_curves(result.history, curves_path, f"Keras {label} ({task})", gpu_samples=sampler.samples)
    common = {
        **result.model_dump(),
        "config": config.model_dump(),
        "execution": execution.model_dump(),
        "attempt": attempt,
        "hardware": hardware,
        "history_path": str(history_path),
        "curves_path": str(curves_path),
        "backend": keras.backend.backend(),
        "target_mean": mean,
        "target_std": std,
    }
    if result.diverged:
        return common
    # The model that is scored and shipped is the best checkpoint, reloaded only if its hash matches.
    trained, loaded, skipped = load_verified(result.checkpoints, keras.saving.load_model)
    for item in skipped:
        ctx.decide("skip a corrupt checkpoint", f"{item['path']}: {item['reason']}")
    trained = float32_copy(trained, x_train.shape[1], task, n_outputs, config, seed + attempt)
    served = trained
    if task == "regression":
        served = with_target_scale(trained, mean, std, name=f"{trained.name}_served")
    models_dir = ctx.run_dir / "models"
    models_dir.mkdir(exist_ok=True)
    path = models_dir / "dnn.keras"
    served.save(path)
    val_scores = _keras_scores(served, x_val, task)
    train_scores = _keras_scores(served, x_train, task)
    val_path = models_dir / "dnn.val.npy"
    np.save(val_path, val_scores)
    candidate = {
        "name": "dnn",
        "family": "neural",
        "kind": "keras",
        "val_score": round(score(metric, y_val, val_scores), 6),
        "train_score": round(score(metric, y_train, train_scores), 6),
        "fit_seconds": result.train_seconds,
        "path": str(path),
        "sha256": sha256_file(path),
        "val_predictions": str(val_path),
    }
    return {**common, "candidate": candidate, "loaded_checkpoint": loaded, "skipped_checkpoints": skipped}


def _train_on_workers(
    ctx: AgentContext,
    state: dict[str, Any],
    model: Any,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    config: Any,
    n_outputs: int,
    seed: int,
    out_dir: Path,
) -> Any:
    """`--workers N`: the same network trained data-parallel on the Ray cluster (execution/ray_train.py);
    its best weights go into this process's copy, saved and hashed like any checkpoint."""
    from ml_expert.execution import executor_for
    from ml_expert.execution.ray_train import ParallelSpec, train_data_parallel
    from ml_expert.tools.training.checkpoints import CheckpointKeeper
    from ml_expert.tools.training.dnn import TrainResult

    options = state["options"]
    workers = int(options["workers"])
    cluster = executor_for(options.get("ray")).report.cluster
    use_gpu = bool(cluster and cluster.gpus >= workers)
    ctx.decide(
        f"train the network data-parallel on {workers} Ray Train workers ({'GPU' if use_gpu else 'CPU'})",
        "Keras 3 with the torch backend under DistributedDataParallel (MultiWorkerMirroredStrategy is "
        "broken with Keras 3); a checkpoint every epoch, at most 2 restarts after a lost worker"
        + ("; class weights are not applied on this path" if config.class_weight else ""),
    )
    x_train, y_train, x_val, y_val = arrays
    spec = ParallelSpec(
        n_features=x_train.shape[1],
        task=state["data"]["task"],
        n_outputs=n_outputs,
        config=config,
        seed=seed,
        workers=workers,
        storage=str(out_dir / "ray_train"),
    )
    weights, parallel = train_data_parallel(
        x_train,
        y_train.astype("float32"),
        x_val,
        y_val.astype("float32"),
        spec,
        name=f"{ctx.run_id}-network",
        use_gpu=use_gpu,
    )
    for start in parallel.starts[1:]:
        ctx.decide(
            f"resume data-parallel training at epoch {start['resumed_from_epoch'] + 1}",
            "a worker was lost; Ray Train restarted the group from the last reported checkpoint",
        )
    model.set_weights(weights)
    keeper = CheckpointKeeper(out_dir, keep_last=config.keep_last)
    model.save(keeper.best_path)
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    RunFile(ctx.run_dir).update(data_parallel=parallel.model_dump(exclude={"history"}))
    return TrainResult(
        epochs_trained=parallel.epochs_trained,
        best_epoch=parallel.best_epoch,
        best_val_loss=parallel.best_val_loss,
        stopped_reason=f"{parallel.stopped_reason} ({workers} data-parallel workers, "
        f"{parallel.failures} restarts)",
        train_seconds=parallel.seconds,
        params=int(model.count_params()),
        history=parallel.history,
        checkpoint=str(keeper.best_path),
        checkpoints=keeper.records(),
        batch_size=config.batch_size,
        summary="\n".join(lines),
    )


def _keras_scores(model, x: np.ndarray, task: str) -> np.ndarray:
    out = np.concatenate(
        [np.asarray(model.predict_on_batch(x[i : i + 4096])) for i in range(0, len(x), 4096)]
    )
    return out if task == "classification" else out.ravel()


def _training_stats(data: dict[str, Any], schema: InputSchema) -> str:
    """Aggregates of the training split for drift checks (quantiles, category shares; no rows)."""
    import json

    from ml_expert.tools.validation.drift import training_statistics

    train_x, _ = load_split(data["files"], "train", schema, data.get("file_hashes"))
    columns = [c.model_dump() for c in schema.columns]
    values = {c.name: train_x[c.key].tolist() for c in schema.columns}
    return json.dumps(training_statistics(columns, values), indent=1) + "\n"


def _package_latency(package_dir: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Single-row and batch latency of the package itself, through inference.py (the serving path)."""

    from ml_expert.runtime.inference import ModelInference
    from ml_expert.tools.validation.latency import measure

    model = ModelInference(package_dir)
    # rows as a caller sends them: raw column names, dates as text
    records = read_frame(data["files"]["val_raw"], data.get("file_hashes"), "val_raw").to_dict(
        orient="records"
    )
    return measure(model.predict, records[:50], records, len(records))


def _append_latency(run_dir: Path, rows: list[dict[str, Any]], package: dict[str, Any] | None) -> None:
    """Add the export latencies to metrics.json and evaluation_report.md (the tester's files).

    The tester runs before any export exists, so latency is measured here, on the reloaded
    export files, and appended to the same report."""
    import json

    from ml_expert.tools.validation.report import latency_section

    # one label per export file: the model's folder and the format ("linear/onnx", "dnn/tflite")
    labelled = [{**r, "format": f"{Path(r['path']).parent.name}/{r['format']}"} for r in rows]
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        metrics["latency"] = {r["format"]: r.get("latency") for r in labelled}
        metrics["latency"]["package (inference.py)"] = package
        metrics["model_size_bytes"] = {r["format"]: r.get("size_bytes") for r in labelled}
        metrics_path.write_text(json.dumps(metrics, indent=2))
    report_path = run_dir / "evaluation_report.md"
    if report_path.exists():
        shown = labelled + (
            [
                {
                    "format": "package (inference.py)",
                    "size_bytes": _dir_size(run_dir / "deployment"),
                    "latency": {**package, "input": "dict rows, schema-validated, preprocessing inside"},
                }
            ]
            if package
            else []
        )
        # a resumed deployment replaces the section instead of adding a second one
        base = report_path.read_text().split("\n## Latency and throughput", 1)[0].rstrip("\n") + "\n"
        report_path.write_text(base + latency_section(shown))


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def deployment(state: dict[str, Any]) -> dict[str, Any]:
    ctx = AgentContext(state, "ml-developer", "deployment")
    ctx.start()
    import joblib

    from ml_expert.tools.deployment.exports import (
        WITHDRAWABLE_FORMATS,
        export_keras,
        export_sklearn,
        measure_export_latency,
        withdraw_unsupported,
    )
    from ml_expert.tools.deployment.package import dockerfile_text, server_source, write_package

    data, training_result = state["data"], state["training"]
    schema = InputSchema.model_validate(data["schema"])
    chosen = training_result["chosen"]
    # Parity and latency use the validation rows: the test split is read once, by the tester.
    reference, _ = load_split(data["files"], "val", schema, data.get("file_hashes"))
    exports_dir = ctx.run_dir / "exports"
    records: list[dict[str, Any]] = []
    onnx_path: str | None = None
    # Only what ships is exported (and judged by the release gate): a network that was trained
    # but not chosen is not converted, so its failed conversion cannot refuse the chosen model.
    dnn = training_result.get("dnn") if chosen["kind"] == "keras" else None
    if chosen["kind"] == "sklearn":
        verify(chosen["path"], chosen["sha256"])
        pipeline = joblib.load(chosen["path"])
        ctx.step(f"exporting {chosen['name']}: joblib, ONNX")
        sk_records = export_sklearn(pipeline, schema, reference, exports_dir / chosen["name"])
        ctx.step("timing each reloaded export")
        measure_export_latency(sk_records, schema, reference)
        records += [r.model_dump() for r in sk_records]
        onnx_path = next((r.path for r in sk_records if r.format == "onnx"), None)
    if dnn:
        _quiet_tensorflow()
        import keras

        import ml_expert.tools.training.sequence_models  # noqa: F401  (registers its layer for load_model)

        candidate = chosen  # the network refit on train + validation (or the train-only one)
        verify(candidate["path"], candidate["sha256"])
        model = keras.saving.load_model(candidate["path"])
        verify(data["files"]["preprocessor"], data["preprocessor_sha256"])
        preprocessor = joblib.load(data["files"]["preprocessor"])
        ctx.step("exporting the Keras DNN: .keras, .h5, SavedModel, TFLite, ONNX")
        k_records = export_keras(model, preprocessor, schema, reference, exports_dir / "dnn")
        if dnn["config"].get("sequence_layer", "conv") != "conv":
            for record in withdraw_unsupported(k_records, WITHDRAWABLE_FORMATS):
                if not record.shipped:
                    ctx.decide(f"do not ship the {record.format} export", record.not_shipped_reason or "")
        ctx.step("timing each reloaded export")
        measure_export_latency(k_records, schema, reference, preprocessor)
        records += [r.model_dump() for r in k_records]
        onnx_path = next((r.path for r in k_records if r.format == "onnx"), None)
    for record in records:
        ctx.emit(
            "export",
            format=record["format"],
            passed=record["parity"]["passed"] if record.get("parity") else False,
        )
    package_dir = ctx.run_dir / "deployment"
    manifest: dict[str, Any] = {}
    package_latency: dict[str, Any] | None = None
    # Every export of the shipped model must pass; one failed format stops the package.
    shipped_dir = exports_dir / (chosen["name"] if chosen["kind"] == "sklearn" else "dnn")
    shipped = [r for r in records if Path(r["path"]).parent == shipped_dir and r.get("shipped", True)]
    chosen_ok = onnx_path is not None and all(r["passed"] for r in shipped)
    if chosen_ok:
        validation = state["validation"]
        run = RunFile(ctx.run_dir).read()
        extra_files = {
            "server.py": server_source().read_text(encoding="utf-8"),
            "Dockerfile": dockerfile_text(),
            "training_stats.json": _training_stats(data, schema),
        }
        if data["task"] == "clustering":  # aggregates over >= 5 training rows (the tester's)
            extra_files["cluster_profiles.json"] = Path(validation["profiles_path"]).read_text()
        metadata = {
            "run_id": ctx.run_id,
            "model": chosen["name"],
            "task": data["task"],
            "primary_metric": validation["primary_metric"],
            "test_score": validation["test_score"],
            "metrics": {k: v for k, v in validation["test_metrics"].items() if isinstance(v, int | float)},
            "seed": int(state["options"]["seed"]),
            "data_fingerprint": data["fingerprint"],
            "split_sizes": data.get("split_sizes"),
            "package_versions": package_versions(),
            "created": run.created,
            "model_size_bytes": Path(onnx_path).stat().st_size,
        }
        write_package(package_dir, Path(onnx_path), schema, metadata, extra_files)
        ctx.step("timing the package through inference.py")
        package_latency = _package_latency(package_dir, data)
        hardware = run.manifest.get("hardware") or {}
        metadata |= {"latency": package_latency, "measured_on": json_safe(hardware)}
        manifest = write_package(package_dir, Path(onnx_path), schema, metadata, extra_files)
        ctx.decide(
            "package the ONNX export of " + chosen["name"],
            "one graph with the preprocessing inside, served by onnxruntime alone",
        )
    _append_latency(ctx.run_dir, records, package_latency)
    result = {
        "exports": records,
        "package_dir": str(package_dir) if manifest else None,
        "manifest": manifest,
        "model": chosen["name"],
        "package_latency": package_latency,
    }
    ctx.record("deployment", result)
    passed = sum(1 for r in records if r.get("parity") and r["parity"]["passed"])
    ctx.done(f"{passed}/{len(records)} exports reloaded and matched")
    return {"deployment": result, "phase": "deployment"}


def json_safe(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
