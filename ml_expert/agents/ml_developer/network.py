"""The neural network: train it (here or data-parallel on a cluster), refit it for shipping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml_expert.agents.context import AgentContext
from ml_expert.agents.ml_developer.common import quiet_tensorflow
from ml_expert.agents.retry import TRAINING_RETRY
from ml_expert.config import RunConfig
from ml_expert.hashing import sha256_file
from ml_expert.phases import DataResult, SelectionResult
from ml_expert.runs import RunFile
from ml_expert.tools.data.prepare import load_split
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.data.splits import read_array
from ml_expert.tools.scoring import score
from ml_expert.tools.selection.baselines import save_predictions
from ml_expert.tools.selection.records import Candidate, Refit
from ml_expert.tools.training.records import NetworkRecord


def refit_network(
    ctx: AgentContext, state: dict[str, Any], schema: InputSchema, chosen: Candidate, dnn: NetworkRecord
) -> Candidate:
    """The winning network again, from scratch, on train + validation for its best epoch count."""
    quiet_tensorflow()
    from ml_expert.tools.training.dnn import float32_copy, refit_dnn, with_target_scale

    data = DataResult.of(state)
    task = data.task
    config = dnn.config
    x = np.concatenate(
        [
            read_array(data.files["X_train"], data.file_hashes, "X_train"),
            read_array(data.files["X_val"], data.file_hashes, "X_val"),
        ]
    )
    files = data.files
    y = np.concatenate(
        [
            load_split(files, "train", schema, data.file_hashes)[1],
            load_split(files, "val", schema, data.file_hashes)[1],
        ]
    )
    if task == "regression":  # the train split's scale, as the measured network learnt it
        y = (y - dnn.target_mean) / dnn.target_std
    n_outputs = len(schema.classes or []) if task == "classification" else 1
    seed = RunConfig.of(state).seed + dnn.attempt
    epochs = dnn.best_epoch
    ctx.step(f"refitting the network on train + validation ({len(y)} rows, {epochs} epochs)")
    model, refit = refit_dnn(x, y.astype("float32"), task, n_outputs, config, seed, epochs)
    if refit["diverged"]:
        ctx.decide(
            "ship the train-only network",
            f"its refit on train + validation did not finish {epochs} finite epochs",
        )
        return Candidate.model_validate({**chosen.model_dump(), "refit": Refit(**refit, on="none")})
    model = float32_copy(model, x.shape[1], task, n_outputs, config, seed)
    if task == "regression":
        model = with_target_scale(model, dnn.target_mean, dnn.target_std, name=f"{model.name}_served")
    path = ctx.run_dir / "models" / "dnn_train_val.keras"
    model.save(path)
    ctx.decide(
        f"refit the network on train + validation ({refit['rows']} rows) for {epochs} epochs",
        "the best epoch early stopping found; the shipped network then learns from "
        "every row but the test split. Its validation and train figures are those of the train-only fit.",
    )
    return Candidate.model_validate(
        {
            **chosen.model_dump(),
            "path": str(path),
            "sha256": sha256_file(path),
            "refit": Refit(**refit, on="train+val", selected_path=chosen.path, selected_sha256=chosen.sha256),
        }
    )


def train_network(
    ctx: AgentContext, state: dict[str, Any], schema: InputSchema, metric: str, attempt: int
) -> NetworkRecord:
    quiet_tensorflow()
    import keras

    from ml_expert.tools.selection.budget import safety_cap
    from ml_expert.tools.training.checkpoints import load_verified
    from ml_expert.tools.training.curves import plot_curves
    from ml_expert.tools.training.dnn import (
        GiveUpWatch,
        build_dnn,
        float32_copy,
        save_history,
        standardise_target,
        train_dnn,
        with_target_scale,
    )
    from ml_expert.tools.training.hardware import UtilisationSampler, free_gpu_memory_mb, hardware_check
    from ml_expert.tools.training.stopping import GIVE_UP_ROWS, GiveUpRule, stopping_split
    from ml_expert.tools.training.throughput import activation_elements, plan_execution

    data, selection = DataResult.of(state), SelectionResult.of(state)
    seed = RunConfig.of(state).seed
    config = selection.plan.config
    if attempt:
        scaled = TRAINING_RETRY.scaled(config.learning_rate, config.clipnorm, attempt)
        config = config.model_copy(update=scaled)
    config = config.model_copy(update={"time_limit_seconds": safety_cap(selection.budget, selection.seconds)})
    hardware = hardware_check()
    ctx.decide(
        f"train on {hardware.device_used}",
        f"{hardware.backend} backend; {len(hardware.gpus)} GPU(s) found; "
        f"{hardware.available_memory_mb:.0f} MB memory available",
    )
    gpu = bool(hardware.gpus)
    if gpu and not config.mixed_precision:
        config = config.model_copy(update={"mixed_precision": True})
        ctx.decide(
            "mixed precision (float16 compute, float32 weights) on the GPU",
            "half the memory traffic per step; the served model is rebuilt in float32",
        )
    x_train = read_array(data.files["X_train"], data.file_hashes, "X_train")
    x_val = read_array(data.files["X_val"], data.file_hashes, "X_val")
    task = data.task
    n_outputs = len(schema.classes or []) if task == "classification" else 1
    # Built before the plan: the GPU batch is sized from the model's own activations (batch,
    # learning rate, steps per call and XLA are compile settings, set when training compiles it).
    model = build_dnn(x_train.shape[1], task, n_outputs, config, seed + attempt)
    execution = plan_execution(
        backend=hardware.backend,
        gpu=gpu,
        rows=len(x_train),
        data_bytes=int(x_train.nbytes + x_val.nbytes),
        forward_flops=float(selection.plan.estimated_flops_per_row or 0),
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        free_gpu_memory_mb=free_gpu_memory_mb() if gpu else None,
        class_weighted=bool(config.class_weight),
        activations=activation_elements(model) if gpu else None,
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
    y_train = load_split(data.files, "train", schema, data.file_hashes)[1]
    y_val = load_split(data.files, "val", schema, data.file_hashes)[1]
    split = stopping_split(y_train, task, seed)
    ctx.decide(f"early stopping on {split.watching}", split.rule)
    x_fit, y_fit, x_stop, y_stop = split.arrays(x_train, y_train, x_val, y_val)
    mean = std = None
    if task == "regression":
        fit_train, fit_val, mean, std = standardise_target(y_fit, y_stop)
        ctx.decide("standardise the regression target for the DNN", f"train mean {mean:.4g}, std {std:.4g}")
    else:
        fit_train, fit_val = y_fit, y_stop
    best = selection.best
    baseline, where = _baseline_on_watched_rows(best, metric, split, y_train, GIVE_UP_ROWS)
    give_up = GiveUpWatch(
        rule=GiveUpRule(
            metric=metric,
            baseline=baseline,
            baseline_name=best.name,
            baseline_rows=where,
            patience=config.patience,
            max_epochs=config.max_epochs,
            watching=f"{min(len(y_stop), GIVE_UP_ROWS)} {split.watching}",
        ),
        x=x_stop[:GIVE_UP_ROWS],
        y=y_stop[:GIVE_UP_ROWS],
        target_mean=mean,
        target_std=std,
    )
    label = "CNN" if config.architecture == "cnn" else "DNN"
    ctx.step(
        f"training a Keras {label} ({model.count_params()} parameters, up to {config.max_epochs} epochs, "
        f"learning rate {config.learning_rate:g}, attempt {attempt + 1})"
    )
    out_dir = ctx.run_dir / "checkpoints" / f"attempt-{attempt}"
    workers = RunConfig.of(state).workers
    with UtilisationSampler(enabled=gpu and workers == 1) as sampler:
        if workers > 1:
            arrays = (x_fit, fit_train, x_stop, fit_val)
            result = _train_on_workers(ctx, state, model, arrays, config, n_outputs, seed + attempt, out_dir)
        else:
            result = train_dnn(
                model,
                x_fit,
                fit_train.astype("float32"),
                x_stop,
                fit_val.astype("float32"),
                config,
                out_dir,
                on_epoch=lambda epoch, total, logs: ctx.emit("epoch", epoch=epoch, total=total, logs=logs),
                task=task,
                give_up=give_up,
            )
    hardware.gpu_utilisation = sampler.summary()
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
    if result.gave_up is not None:
        g = result.gave_up
        ctx.decide(
            f"stop the network at epoch {g.epoch}: {metric} {g.network:.4f}, {best.name} {g.baseline:.4f}",
            g.reason + ": it cannot win; it stays a candidate, compared with the best as any network",
        )
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
        "execution": execution,
        "attempt": attempt,
        "hardware": hardware,
        "history_path": str(history_path),
        "curves_path": str(curves_path),
        "backend": keras.backend.backend(),
        "target_mean": mean,
        "target_std": std,
    }
    if result.diverged:
        return NetworkRecord.model_validate(common)
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
    val_path, val_sha = save_predictions(models_dir / "dnn.val.npy", val_scores)
    candidate = Candidate(
        name="dnn",
        family="neural",
        kind="keras",
        val_score=round(score(metric, y_val, val_scores), 6),
        train_score=round(score(metric, y_train, train_scores), 6),
        fit_seconds=result.train_seconds,
        path=str(path),
        sha256=sha256_file(path),
        val_predictions=val_path,
        predictions_sha256={val_path: val_sha},
    )
    return NetworkRecord.model_validate(
        {**common, "candidate": candidate, "loaded_checkpoint": loaded, "skipped_checkpoints": skipped}
    )


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
    from ml_expert.execution.tolerance import tolerance_statement
    from ml_expert.tools.training.checkpoints import CheckpointKeeper
    from ml_expert.tools.training.dnn import TrainResult

    run = RunConfig.of(state)
    workers = run.workers
    cluster = executor_for(run.ray).report.cluster
    use_gpu = bool(cluster and cluster.gpus >= workers)
    task = DataResult.of(state).task
    ctx.decide(
        f"train the network data-parallel on {workers} Ray Train workers ({'GPU' if use_gpu else 'CPU'})",
        "Keras 3 with the torch backend under DistributedDataParallel (MultiWorkerMirroredStrategy is "
        "broken with Keras 3); a checkpoint every epoch, at most 2 restarts after a lost worker; "
        + ("class weights weigh each row's loss as in one process; " if config.class_weight else "")
        + (
            f"the same {config.time_limit_seconds:.0f} s wall-clock cap, agreed by all workers; "
            if config.time_limit_seconds is not None
            else ""
        )
        + tolerance_statement(task)
        + " (a different per-worker batch and order of gradient sums, not an exact match)",
    )
    x_train, y_train, x_val, y_val = arrays
    spec = ParallelSpec(
        n_features=x_train.shape[1],
        task=task,
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
            f"a worker was lost (rank {', '.join(map(str, start['lost_ranks'])) or 'unknown'}): "
            f"{start['cause']}; Ray Train restarted the group from the last reported checkpoint",
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
        cap_hit=parallel.cap_hit,
        train_seconds=parallel.seconds,
        params=int(model.count_params()),
        history=parallel.history,
        checkpoint=str(keeper.best_path),
        checkpoints=keeper.records(),
        batch_size=config.batch_size,
        summary="\n".join(lines),
    )


def _baseline_on_watched_rows(
    best: Candidate, metric: str, split: Any, y_train: np.ndarray, limit: int
) -> tuple[float, str]:
    """The best candidate's figure the give-up rule measures the network against, and on which rows.

    On the rows the network is scored on when there is an honest figure there: its out-of-fold
    predictions (cross-validated on small data, train rows first) on the watched training rows, or
    its validation score when early stopping watches the validation rows; else its validation score
    (large data: thousands of rows on both sides)."""
    from ml_expert.tools.selection.baselines import CandidateResult

    if split.on_validation or not getattr(best, "heldout_predictions", None):
        return best.val_score, "validation"
    rows = np.asarray(split.stop_rows[:limit])
    oof = CandidateResult.model_validate(best.model_dump()).held_out(True)[: len(y_train)]
    figure = score(metric, y_train[rows], oof[rows], best.threshold)
    return round(float(figure), 6), "the same rows, out of fold"


def _keras_scores(model, x: np.ndarray, task: str) -> np.ndarray:
    out = np.concatenate(
        [np.asarray(model.predict_on_batch(x[i : i + 4096])) for i in range(0, len(x), 4096)]
    )
    return out if task == "classification" else out.ravel()
