"""The markdown evaluation report: what was measured, on what, and what was decided."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml_expert.tools.validation.fairness import ClassificationFairness, Fairness

if TYPE_CHECKING:
    from ml_expert.tools.execution_report import ExecutionReport
    from ml_expert.tools.selection.records import Candidate, TimeSpent
    from ml_expert.tools.selection.verdicts import Escalation
    from ml_expert.tools.training.hardware import GpuUtilisation
    from ml_expert.tools.training.throughput import ExecutionPlan
    from ml_expert.tools.validation.calibration import Calibration
    from ml_expert.tools.validation.report_inputs import LatencyRow, SupervisedReportInputs


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_report(info: SupervisedReportInputs) -> str:
    metric = info.metric
    lines = [
        f"# Evaluation report: run `{info.run_id}`",
        "",
        f"- Task: **{info.task}**; data: `{info.source}` (fingerprint `{info.fingerprint[:16]}`)",
        f"- Splits (rows): {info.split_sizes.model_dump()}",
        *(
            [
                f"- {info.sample.words} (validation: {info.sample.val_rows:,} of {info.sample.val_total:,}, "
                f"seed {info.sample.seed}), shipped without the refit on train + validation: "
                f"{info.sample.rule}"
            ]
            if info.sample
            else []
        ),
        f"- Chosen model: **{info.chosen}** — {info.choice_reason}",
        f"- Primary metric: `{metric}` ({info.metric_reason})",
        f"- Test split read {info.test_reads} time(s) with results, by the tester only"
        + (
            f" ({info.test_reads_interrupted} earlier read(s) of the same model were interrupted"
            " before any result)."
            if info.test_reads_interrupted
            else "."
        ),
        "",
        "## Test metrics (untouched test split)",
        "",
        f"The chosen metric `{metric}` first, the others beside it.",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    shown = info.test_metrics.figures
    if metric in shown:
        lines.append(f"| **{metric}** (chosen) | **{_fmt(shown[metric])}** |")
    for name, value in shown.items():
        if name != metric:
            lines.append(f"| {name} | {_fmt(value)} |")
    if info.threshold is not None:
        lines += [
            "",
            f"Decision threshold: class 1 when P(class 1) >= {info.threshold:.6g} (tuned on held-out "
            "predictions; it ships inside the ONNX graph).",
        ]
    lines += [
        "",
        f"Dummy baseline on the same test split: `{metric}` = {_fmt(info.dummy_test_score)}.",
        f"Train − validation gap of the chosen model: {_fmt(info.overfit_gap)} (a random forest's "
        "train score is out-of-bag: each row scored by the trees that did not see it).",
        "",
    ]
    if info.classification_report is not None:
        lines += ["## Classification report", "", "```", info.classification_report, "```", ""]
        lines += ["![Confusion matrix](confusion_matrix.png)", ""]
    comparison = info.comparison
    folds = comparison.folds if comparison else None
    cv_head = f"{folds}-fold CV {metric} mean ± std | " if folds else ""
    lines += [
        "## Leaderboard",
        "",
        *([f"How candidates were compared: {comparison.rule}.", ""] if comparison else []),
        f"| model | kind | {cv_head}validation {metric} | train {metric} | fit seconds |",
        "|---|---|" + ("---|" if folds else "") + "---|---|---|",
    ]
    for row in info.leaderboard:
        lines.append(_leaderboard_line(row, bool(folds)))
    lines += escalation_section(info.escalations)
    dnn = info.dnn
    if dnn:
        lines += [
            "",
            "## Neural network",
            "",
            f"- Parameters: {dnn.params}",
            f"- Training time: {dnn.train_seconds:.1f} s; epochs trained: {dnn.epochs_trained}; "
            f"best epoch: {dnn.best_epoch}",
            f"- Best early-stopping loss: {_fmt(dnn.best_val_loss)}; stopped: {dnn.stopped_reason}",
            *execution_lines(info.network_execution, info.gpu_utilisation),
            "",
            "![Training curves](training_curves.png)",
            "",
            "```",
            str(dnn.summary),
            "```",
        ]
    lines += time_section(info.time)
    lines += execution_section(info.execution)
    lines += calibration_section(info.calibration)
    lines += fairness_section(info.fairness, info.fairness_unavailable or {})
    lines += ["", "## Decisions", ""]
    lines += [f"- **{d.decision}** — {d.reason}" for d in info.decisions]
    return "\n".join(lines) + "\n"


def _leaderboard_line(row: Candidate, folds: bool) -> str:
    cv = ""
    if folds:
        cv = (
            f"{_fmt(row.cv_mean)} ± {_fmt(row.cv_std or 0.0)} | "
            if row.cv_mean is not None
            else "not cross-validated | "
        )
    out_of_bag = " (out-of-bag)" if row.train_score_kind == "out-of-bag" else ""
    return (
        f"| {row.name} | {row.kind} | {cv}{_fmt(row.val_score)} | {_fmt(row.train_score)}{out_of_bag} | "
        f"{_fmt(row.fit_seconds)} |"
    )


def escalation_section(escalations: list[Escalation]) -> list[str]:
    """Each 'does the more complex candidate win' decision with its figures (tools/selection/noise.py)."""
    if not escalations:
        return []
    lines = [
        "",
        "## Escalations (kept only when they win by more than the noise margin)",
        "",
        "| candidate | against | scheme | candidate score | incumbent score | gain | margin | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in escalations:
        lines.append(
            f"| {e.candidate} | {e.simple} | {e.scheme} | {_fmt(e.candidate_score)} | "
            f"{_fmt(e.simple_score)} | {e.gain:+.4f} | {_fmt(e.margin)} | "
            f"{'yes' if e.wins else 'no'} |"
        )
    return lines


def execution_lines(plan: ExecutionPlan | None, util: GpuUtilisation | None) -> list[str]:
    """How the device was driven (batch, steps per call, XLA) and how busy it was kept."""
    if plan is None:
        return []
    lines = [
        f"- Execution: {plan.device.upper()} ({plan.backend}), batch {plan.batch_size}, "
        f"{plan.steps_per_execution} steps per call, XLA {plan.jit_compile}, data "
        f"{'on the device' if plan.data_on_device else 'streamed from host memory'}"
    ]
    if util:
        lines.append(
            f"- GPU utilisation while training: mean {util.mean_pct} %, p10 {util.p10_pct} %, "
            f"max {util.max_pct} % ({util.samples} samples every {util.interval_seconds} s)"
        )
    elif plan.device == "gpu":
        lines.append("- GPU utilisation: not sampled (nvidia-smi unavailable)")
    return lines


def time_section(spent: TimeSpent | None) -> list[str]:
    """How `--budget` (model selection plus training) was spent, and whether a cap fired."""
    if not spent:
        return []
    tuning = spent.tuning_seconds
    fits = ", ".join(f"{k} {v:.2f}" for k, v in spent.baseline_fit_seconds.items())
    folds = spent.cv_folds
    what = (
        f"{len(spent.candidates)} candidates, each fit on train and {folds}-fold "
        "cross-validated on train + validation"
        if folds
        else "candidates fit on train and scored on validation"
    )
    rows = [(f"task analysis and {what} (seconds: {fits})", spent.model_selection_seconds - tuning)]
    if spent.tuning_trials_planned:
        trials = f"{spent.tuning_trials_run} of {spent.tuning_trials_planned}"
        rows.append((f"hyperparameter search ({trials} trials)", tuning))
    if spent.network_epochs_planned:
        epochs = f"{spent.network_epochs_run} of {spent.network_epochs_planned}"
        rows.append((f"neural network ({epochs} epochs)", spent.network_seconds))
    refit = "refit of the chosen model on train + validation (or its bag of fold fits)"
    rows.append((refit, spent.refit_seconds))
    rows.append(("**total**", spent.total_seconds))
    share = spent.share_of_budget
    lines = [
        "",
        f"## Time (budget {spent.budget_seconds:g} s for model selection plus training)",
        "",
        "| part | seconds |",
        "|---|---|",
        *(f"| {name} | {value:.1f} |" for name, value in rows),
    ]
    lines += [
        "",
        *([f"Total: {share:.0%} of the budget."] if share is not None else []),
        "A wall-clock cap fired (the planned counts were cut short)."
        if spent.cap_hit
        else "No wall-clock cap fired: the planned epoch and trial counts ran in full.",
    ]
    return lines


def execution_section(execution: ExecutionReport | None) -> list[str]:
    """Where the independent fits ran (only for a run on a Ray cluster)."""
    if not execution or execution.mode != "ray" or execution.cluster is None:
        return []
    c = execution.cluster
    started = " (started by this run, stopped at its end)" if c.started_here else ""
    lines = [
        "",
        "## Where the fits ran",
        "",
        f"- Ray cluster `{c.address}`{started}"
        f": {c.nodes} node(s), {c.cpus:g} CPUs, {c.gpus:g} GPUs, {c.memory_gb:g} GB memory "
        f"at the start (Ray {c.ray_version})",
        f"- {execution.tasks_done} tasks ({', '.join(execution.batches)}); the data sent to the "
        f"object store once ({execution.data_puts} objects)",
        f"- Search plan: {execution.plan_scale_rule}",
        "",
        "| node | tasks |",
        "|---|---|",
    ]
    lines += [f"| {node} | {count} |" for node, count in execution.tasks_per_node.items()]
    retries = execution.retries
    lines += ["", f"Retries (at most {execution.max_retries} per task): {len(retries) or 'none'}."]
    lines += [f"- {r.label} #{r.index}, attempt {r.attempt} lost: {r.cause}" for r in retries]
    return lines


def calibration_section(cal: Calibration | None) -> list[str]:
    if not cal:
        return []
    return [
        "",
        "## Calibration (binary, test split)",
        "",
        f"- Brier score: {_fmt(cal.brier_score)} (0 is perfect; always predicting the base rate scores "
        "its variance)",
        f"- Expected calibration error over {cal.bins} bins: {_fmt(cal.expected_calibration_error)}",
        "",
        "![Reliability curve](reliability_curve.png)",
    ]


def fairness_section(fairness: dict[str, Fairness] | None, unavailable: dict[str, str]) -> list[str]:
    if not fairness and not unavailable:
        return []
    lines = ["", "## Fairness by group (test split)", ""]
    for name, why in unavailable.items():
        lines.append(f"- `{name}`: not evaluated — {why}.")
    for name, result in (fairness or {}).items():
        lines += ["", f"### `{name}`", ""]
        if isinstance(result, ClassificationFairness):
            lines += [
                f"- Demographic parity difference: {_fmt(result.demographic_parity_difference)}",
                f"- Equalized odds difference: {_fmt(result.equalized_odds_difference)}",
                f"- Accuracy gap: {_fmt(result.accuracy_gap)}",
                "",
                "| group | rows | accuracy | selection rate | true positive rate | false positive rate |",
                "|---|---|---|---|---|---|",
            ]
            for g, e in result.per_group.items():
                lines.append(
                    f"| {g} | {e.rows} | {_fmt(e.accuracy)} | {_rates(e.selection_rate)} | "
                    f"{_rates(e.true_positive_rate)} | {_rates(e.false_positive_rate)} |"
                )
        else:
            lines += [
                f"- Largest MAE difference between groups: {_fmt(result.mae_difference)} "
                f"({_fmt(result.gap)} of the overall MAE)",
                "",
                "| group | rows | MAE | RMSE | mean error |",
                "|---|---|---|---|---|",
            ]
            for g, r in result.per_group.items():
                lines.append(f"| {g} | {r.rows} | {_fmt(r.mae)} | {_fmt(r.rmse)} | {_fmt(r.mean_error)} |")
        lines.append(f"\nGroups compared (at least the minimum rows): {', '.join(result.groups_compared)}")
    return lines


def _rates(values: dict[str, float | None]) -> str:
    shown = [("n/a" if v is None else f"{v:.3f}") for v in values.values()]
    return shown[0] if len(shown) == 1 else " / ".join(f"{k}:{s}" for k, s in zip(values, shown, strict=True))


def latency_section(rows: list[LatencyRow]) -> str:
    """Latency of every reloaded export, rendered by the deployment phase (exports exist only then)."""
    lines = [
        "",
        "## Latency and throughput of each export (measured after reload, validation rows)",
        "",
        "| format | size on disk | single-row p50 ms | p95 ms | p99 ms | batch rows/s | input |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r.measured:
            lines.append(f"| {r.format} | {r.size_bytes} | not measured: {r.error or 'export failed'} |||||")
            continue
        lines.append(
            f"| {r.format} | {r.size_bytes} B | {r.p50_ms:.3f} | {r.p95_ms:.3f} | "
            f"{r.p99_ms:.3f} | {r.batch_rows_per_second:.0f} | {r.input} |"
        )
    return "\n".join(lines) + "\n"
