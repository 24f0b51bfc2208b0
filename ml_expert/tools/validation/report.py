"""The markdown evaluation report: what was measured, on what, and what was decided."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_report(info: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation report: run `{info['run_id']}`",
        "",
        f"- Task: **{info['task']}**; data: `{info['source']}` (fingerprint `{info['fingerprint'][:16]}`)",
        f"- Splits (rows): {info['split_sizes']}",
        f"- Chosen model: **{info['chosen']}** — {info['choice_reason']}",
        f"- Primary metric: `{info['metric']}` ({info['metric_reason']})",
        f"- Test split read {info['test_reads']} time(s), by the tester only.",
        "",
        "## Test metrics (untouched test split)",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for name, value in info["test_metrics"].items():
        if isinstance(value, int | float):
            lines.append(f"| {name} | {_fmt(value)} |")
    lines += [
        "",
        f"Dummy baseline on the same test split: `{info['metric']}` = {_fmt(info['dummy_test_score'])}.",
        f"Train − validation gap of the chosen model: {_fmt(info['overfit_gap'])}.",
        "",
    ]
    if "classification_report" in info["test_metrics"]:
        lines += [
            "## Classification report",
            "",
            "```",
            info["test_metrics"]["classification_report"],
            "```",
            "",
        ]
        lines += ["![Confusion matrix](confusion_matrix.png)", ""]
    lines += [
        "## Leaderboard (validation split)",
        "",
        f"| model | kind | validation {info['metric']} | train {info['metric']} | fit seconds |",
        "|---|---|---|---|---|",
    ]
    for row in info["leaderboard"]:
        lines.append(
            f"| {row['name']} | {row['kind']} | {_fmt(row['val_score'])} | {_fmt(row['train_score'])} | "
            f"{_fmt(row['fit_seconds'])} |"
        )
    dnn = info.get("dnn")
    if dnn:
        lines += [
            "",
            "## Neural network",
            "",
            f"- Parameters: {dnn['params']}",
            f"- Training time: {dnn['train_seconds']:.1f} s; epochs trained: {dnn['epochs_trained']}; "
            f"best epoch: {dnn['best_epoch']}",
            f"- Best validation loss: {_fmt(dnn['best_val_loss'])}; stopped: {dnn['stopped_reason']}",
            "",
            "![Training curves](training_curves.png)",
            "",
            "```",
            dnn["summary"],
            "```",
        ]
    lines += ["", "## Decisions", ""]
    lines += [f"- **{d['decision']}** — {d['reason']}" for d in info.get("decisions", [])]
    return "\n".join(lines) + "\n"
