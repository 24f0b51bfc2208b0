"""Turn benchmarks/results/*.json into benchmarks/RESULTS.md: every table with its date, machine,
load and the exact command that produced it, and every target marked met or not met.

    python benchmarks/report.py [--results DIR] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, ROOT  # noqa: E402

ORDER = (
    "startup",
    "quality",
    "bagging",
    "overhead",
    "inference",
    "serving",
    "scale",
    "clustering",
    "networks",
    "cluster",
    "network_tolerance",
)
METRIC_NAMES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "roc_auc": "ROC-AUC",
    "f1_macro": "macro-F1",
    "log_loss": "log-loss",
    "r2": "R²",
    "rmse": "RMSE",
}


def num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def kib(size: int | None) -> str:
    return "–" if size is None else f"{size / 1024:,.1f}"


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("**met**" if met else "**not met**")


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def context(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    return [
        f"- Date: {doc.get('date', 'not recorded')}; took {num(doc.get('seconds'), 0)} s",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB memory, Python {m['python']}, "
        f"{m['platform']}",
        f"- Load averages (1/5/15 min) before: {doc.get('load_before')}, after: {doc.get('load_after')} "
        "(the machine is shared; other processes were running)",
        f"- Command: `{doc.get('command', 'not recorded')}` (from the repository root, with the project's "
        "virtualenv)",
        f"- Protocol: `{json.dumps(doc.get('protocol'), default=str)}`",
        "",
    ]


def startup(doc: dict[str, Any]) -> list[str]:
    rows = [
        [f"`{r['command']}`", num(r["median_seconds"], 3), num(r["min_seconds"], 3), num(r["max_seconds"], 3),
         ", ".join(r["heavy_imports"]) or "none", r["exit_code"], verdict(r["met"])]
        for r in doc["rows"]
    ]  # fmt: skip
    return [
        *table(["command", "median s", "min s", "max s", "heavy imports", "exit", "< 0.5 s, no TF"], rows),
        "",
        "`status` in an empty workspace exits 2 (no runs): that is its documented answer, timed as is.",
    ]


def quality(doc: dict[str, Any]) -> list[str]:
    from benchmarks.quality import better_up, summarise

    protocol = doc["protocol"]
    summary = summarise(doc["rows"])  # from the raw rows, so the figures follow the current rules
    out = []
    if not protocol.get("full_protocol"):
        out += [
            f"**Reduced run, not the issue's protocol** (B = {protocol['budget_seconds']} s, seeds "
            f"{protocol['seeds']}; the issue asks for B = 60 s and seeds 0, 1, 2).",
            "",
        ]
    out += [f"AutoGluon: {protocol.get('autogluon')}.", ""]
    systems = [s for s in ("ml-expert", "ml-expert-image", "hgb", "rf", "flaml", "autogluon")
               if any(e["system"] == s for e in summary["per_dataset"])]  # fmt: skip
    by = {(e["dataset"], e["system"]): e for e in summary["per_dataset"]}
    datasets = sorted({e["dataset"] for e in summary["per_dataset"]})
    ranked_by = {
        "default": "accuracy, R² for regression: the default metric",
        "roc_auc": "ROC-AUC on binary targets (FLAML's default), accuracy otherwise, R² for regression",
        "log_loss": "log-loss on multiclass targets (FLAML's default there; lower is better), accuracy "
        "otherwise, R² for regression",
        "balanced": "accuracy, balanced accuracy where classes are imbalanced 3:1 or more, R² for regression",
    }[protocol.get("scoring", "balanced")]
    told = "; ml-expert told the metric with `--metric`" if protocol.get("ml_expert_told_metric") else ""
    out += [f"Primary metric per dataset (mean ± standard deviation over seeds; {ranked_by}{told}); "
            "best in bold:", ""]  # fmt: skip
    rows = []
    for d in datasets:
        metric = next(e["primary_metric"] for e in summary["per_dataset"] if e["dataset"] == d)
        values = {s: better_up(metric, by[(d, s)][metric]) for s in systems if (d, s) in by}
        best = max(values.values()) if values else None
        cells = []
        for s in systems:
            if (d, s) not in by:
                cells.append("–")
                continue
            e = by[(d, s)]
            text = f"{e[metric]:.4f} ± {e.get(metric + '_std', 0.0):.4f}"
            cells.append(f"**{text}**" if better_up(metric, e[metric]) == best else text)
        rows.append([d, METRIC_NAMES[metric], *cells])
    out += table(["dataset", "metric", *systems], rows)
    out += [
        "",
        "Every metric, wall seconds (fit + predict, child process) and peak RSS (MB), means over seeds:",
        "",
    ]
    detail = []
    for d in datasets:
        for s in systems:
            if (d, s) not in by:
                continue
            e = by[(d, s)]
            cell_rows = [r for r in doc["rows"] if r["dataset"] == d and r["system"] == s]
            chosen = sorted({str(r["chosen_model"]) for r in cell_rows if r.get("chosen_model")})
            detail.append([d, s, e["seeds"], *(num(e.get(k)) for k in METRIC_NAMES),
                           num(e.get("wall_seconds"), 1), num(e.get("peak_rss_mb"), 0),
                           ", ".join(chosen) or "–"])  # fmt: skip
    out += table(["dataset", "system", "seeds", *METRIC_NAMES.values(), "wall s", "peak MB", "model chosen"],
                 detail)  # fmt: skip
    failures = [r for r in doc["rows"] if "metrics" not in r]
    if failures:
        out += ["", "Runs that produced no score:", ""]
        out += [f"- {r['dataset']} seed {r['seed']} {r['system']}: {r.get('error')}" for r in failures]
    out += [
        "",
        "Mean rank per system (1 = best; all systems, then among ml-expert, FLAML and AutoGluon):",
        "",
    ]
    ranks = summary["ranks"]
    automl = summary["automl_ranks"]
    out += table(["system", "mean rank (all)", "mean rank (AutoML three)"],
                 [[s, num(ranks.get(s), 2), num(automl.get(s), 2)] for s in ranks])  # fmt: skip
    out += ["", "Targets:", ""]
    for key, target in summary["targets"].items():
        value = target.get("value", target.get("worst"))
        extra = f"; gaps to HGB: {target['gaps']}" if "gaps" in target else ""
        out.append(f"- {target['target']}: {num(value)} → {verdict(target['met'])}{extra}")
        _ = key
    return out


def bagging(doc: dict[str, Any]) -> list[str]:
    """What ships on small data (tools/selection/fold_bag.py): the paired gain of each bag over the refit."""
    folds = doc["protocol"]["folds"]
    header = ["data", "family", "seeds", "refit ROC-AUC", "refit log-loss"]
    for k in folds:
        header += [f"bag of {k}: ROC-AUC gain (wins)", f"bag of {k}: log-loss gain (wins)"]
    rows = []
    for r in doc["summary"]:
        row = [r["dataset"], r["family"], r["seeds"], num(r["refit_roc_auc"]), num(r["refit_log_loss"])]
        for k in folds:
            for metric in ("roc_auc", "log_loss"):
                row.append(f"{r[f'bag{k}_{metric}_gain']:+.4f} ({r[f'bag{k}_{metric}_wins']})")
        rows.append(row)
    return table(header, rows) + [
        "",
        "Gain: the mean over seeds of the bag's score minus the refit's on the same test rows (log-loss: "
        "the refit's minus the bag's), so positive favours the bag; wins: the seeds where it was ahead.",
    ]


def overhead(doc: dict[str, Any]) -> list[str]:
    s = doc["summary"]
    pair = doc["pairs"][0]
    rows = [
        [
            "wall time of the process (s)",
            num(s["graph_process_seconds"], 2),
            num(s["plain_process_seconds"], 2),
        ],
        ["imports (s)", num(pair["graph"]["import_seconds"], 2), num(pair["plain"]["import_seconds"], 2)],
        [
            "work after imports (s)",
            num(pair["graph"]["work_seconds"], 2),
            num(pair["plain"]["work_seconds"], 2),
        ],
        ["peak RSS (MB)", num(s["graph_peak_rss_mb"], 0), num(s["plain_peak_rss_mb"], 0)],
        ["chosen model", pair["graph"]["chosen"], pair["plain"]["chosen"]],
        ["DNN epochs trained", num(pair["graph"].get("dnn_epochs")), num(pair["plain"].get("dnn_epochs"))],
    ]
    out = table(["", "full graph (memory + progress)", "plain script (same tools)"], rows)
    out += [
        "",
        f"Ratio graph / plain: process {s['ratio_process']}, work after imports {s['ratio_work']} "
        f"(memory backend: {pair['graph'].get('memory_backend')}).",
        "",
        *(
            [
                f"Without training's run-to-run noise (every difference below except training's, added to "
                f"the plain script's time): {num(s['overhead_seconds_without_training_noise'], 3)} s, "
                f"ratio {num(s['ratio_without_training_noise'], 3)}.",
                "",
            ]
            if "ratio_without_training_noise" in s
            else []
        ),
        "Where the difference goes (graph node seconds minus the plain step doing the same tool work; "
        "gates, init and finish have no plain counterpart):",
        "",
    ]
    out += table(["part", "graph − plain (s)"], [[k, num(v, 3)] for k, v in s["difference_by_node"].items()])
    target = s["target"]
    out += ["", f"Target: {target['target']}: {num(target['value'], 3)} → {verdict(target['met'])}"]
    return out


def inference(doc: dict[str, Any]) -> list[str]:
    trained = doc.get("trained") or {}
    out = []
    if trained:
        chosen = trained.get("chosen_model")
        out += [f"Model: the demo run (`ml-expert run --json`), chosen model `{chosen}`; "
                "every export of the run is timed.", ""]  # fmt: skip
    rows = [
        [r["format"], r["input"], num(r["p50_ms"], 3), num(r.get("p95_ms"), 3), num(r["p99_ms"], 3),
         num(r["rows_per_second"], 0), kib(r.get("size_bytes"))]
        for r in doc["rows"]
    ]  # fmt: skip
    out += table(["export", "input", "single row p50 ms", "p95 ms", "p99 ms",
                  f"batch of {doc['protocol']['batch_rows']}: rows/s", "size KiB"], rows)  # fmt: skip
    out += [
        "",
        "`matrix` inputs are already preprocessed (the Keras-side exports; their scikit-learn preprocessing "
        "is not timed); `frame` (a one-row pandas DataFrame converted by `to_onnx_feed` or the pipeline) and "
        "`records` (dicts, the package's `ModelInference`) inputs are raw rows and include preprocessing; "
        "`feed` is the ONNX session alone on tensors prepared beforehand.",
    ]
    target = doc.get("target")
    if target:
        out += ["", f"Target: {target['target']}: {num(target['value'], 3)} → {verdict(target['met'])}"]
    return out


def serving(doc: dict[str, Any] | None) -> list[str]:
    if doc is None:
        # benchmarks/serving.py writes its own markdown (machine, load, command, table): embed it.
        written = RESULTS / "serving.md"
        if written.exists():
            return written.read_text().splitlines()[1:]
        return ["Not measured: run `python -m benchmarks.serving`."]
    rows = doc.get("rows", [])
    if not rows:
        return ["`serving.json` holds no rows."]
    keys = list(rows[0].keys())
    return table(keys, [[num(r.get(k), 3) for k in keys] for r in rows])


def scale(doc: dict[str, Any]) -> list[str]:
    rows = [[r["data"], num(r["rows"]), num(r["wall_seconds"], 1), num(r["peak_rss_mb"], 0), r["status"],
             r.get("chosen_model") or "–", r.get("error") or ""] for r in doc["rows"]]  # fmt: skip
    out = table(["data", "rows", "wall s", "peak RSS MB", "status", "chosen", "error"], rows)
    selected = [r for r in doc["rows"] if r.get("selection_seconds") is not None]
    if selected:  # model selection against the budget (recorded since #17 item 9)
        out += ["", "Model selection:", ""] + table(
            ["data", "selection s", "budget s", "fit rows", "candidates fit", "stopped by the cap"],
            [[r["data"], num(r["selection_seconds"], 1), num(r["selection_budget"], 0),
              num(r.get("fit_rows")), ", ".join(r["candidates"]), ", ".join(r["stopped"]) or "–"]
             for r in selected],
        )  # fmt: skip
    slope = num(doc["growth_exponent"], 3)
    out += [
        "",
        f"Growth exponent (slope of log wall on log rows, synthetic sizes): {slope}",
        "",
        "Targets:",
        "",
    ]
    for target in doc["targets"].values():
        out.append(f"- {target['target']}: {num(target['value'], 3)} → {verdict(target['met'])}")
    if doc["targets"]["time_1m"]["met"] is None:
        out.append("- 1M rows was not run in this measurement, so the 20-minute target is not measured.")
    return out


def cluster(doc: dict[str, Any]) -> list[str]:
    rows = []
    for r in doc["rows"]:
        per_node = ", ".join(f"{n}: {c}" for n, c in r["tasks_per_node"].items())
        rows.append([r["nodes"], r.get("fault") or "–", num(r["wall_seconds"], 1), per_node,
                     len(r["retries"]), num(r.get("seconds_kill_to_detected"), 2),
                     num(r.get("seconds_kill_to_retried_result"), 2)])  # fmt: skip
    out = table(["nodes", "fault", "search wall s", "tasks per node", "retries", "kill → loss seen s",
                 "kill → retried result s"], rows)  # fmt: skip
    out += [
        "",
        f"Same trial scores on 1 node, 2 nodes and 2 nodes with a killed worker: "
        f"{'yes' if doc['same_scores_everywhere'] else '**no**'}; 2 nodes vs 1: "
        f"{num(doc['speedup_2_vs_1'], 2)}x. Ray processes left running after the benchmark: "
        f"{len(doc['left_running'])}.",
        "",
        '"kill → loss seen" is how long the driver took to learn that the task\'s worker died; '
        '"kill → retried result" ends when the resubmitted trial\'s result came back: it queues behind '
        "the trials not yet started and needs a new worker process (imports), so on 2 busy cores it "
        "lasts about as long as the rest of the search.",
        "",
    ]
    networks = doc.get("networks") or []
    if networks:
        first = networks[0]
        out += [
            f"**The network, data-parallel on the two nodes** (Ray Train, torch under DDP; "
            f"{first['train_rows']} training rows, planned batch {first['batch_size']} split over the "
            f"workers, {first['epochs']} epochs, seed 0):",
            "",
        ]
        out += table(
            ["workers", "controller poll s", "wall s", "epochs", "best val loss"],
            [
                [
                    n["workers"],
                    num(n["controller_poll_s"], 1),
                    num(n["wall_seconds"], 1),
                    n["epochs"],
                    num(n["best_val_loss"]),
                ]
                for n in networks
            ],
        )
        out += [
            "",
            "The wall includes starting the Train controller, placing and starting the workers, the "
            "process group and each worker's imports (about 15 s on 2 idle cores before the first "
            "epoch). 0.2 s is the poll ml-expert sets for its fits unless the user set "
            "`RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`; 2.0 s is Ray Train's default, under which a worker's "
            "report() waits for the next poll once a few results are queued. On one machine the "
            "2 workers' all-reduce after every step (gloo, between processes) is paid on the same "
            "cores as the compute, so a small dense network can train slower on 2 workers than on 1: "
            "this shows the overhead, not what 2 machines or GPUs give.",
            "",
        ]
    out += [f"- {note}" for note in doc["notes"]]
    return out


def network_tolerance(doc: dict[str, Any]) -> list[str]:
    """The data-parallel worker loop on 1 and 2 ranks vs the in-process fit, per task: validation
    accuracy (classification), validation RMSE / std of the targets (regression)."""
    old = {"classification": {"figure": "validation accuracy", **doc}}  # a file from before regression
    tasks = doc.get("tasks") or old
    out: list[str] = []
    for task, part in tasks.items():
        regression = task == "regression"
        head = ["seed", "1 worker", "2 workers (DDP)", "in process (Keras fit)"]
        rows = [
            [r["seed"], num(r["workers_1"]), num(r["workers_2"]), num(r["in_process"])] for r in part["rows"]
        ]
        if regression:  # R² on the same rows is 1 - figure²
            head.append("R² in process")
            rows = [row + [num(1 - r["in_process"] ** 2)] for row, r in zip(rows, part["rows"], strict=True)]
        gaps = part["largest_gaps"]
        out += (
            [f"**{task.capitalize()}** ({part['figure']}):", ""]
            + table(head, rows)
            + [
                "",
                f"Largest gaps: 1 vs 2 workers {num(gaps['workers_1_vs_2'])}, 2 workers vs in process "
                f"{num(gaps['workers_2_vs_in_process'])}, 1 worker vs in process "
                f"{num(gaps['workers_1_vs_in_process'])}; the stated tolerance "
                f"(`{'NETWORK_NRMSE_TOLERANCE' if regression else 'NETWORK_METRIC_TOLERANCE'}`, "
                f"ml_expert/execution/tolerance.py) is {num(part['tolerance'])}.",
                "",
            ]
        )
    return out + [
        "The workers run `run_worker` without Ray (gloo process group, as TorchTrainer sets up on CPUs); "
        "with 6 epochs, the 2-worker figures of seed 0 are the ones tests/test_ray_train.py gets through "
        "Ray Train. "
        "Regression targets are in units of thousands (x 1000 + 5000) and reach both trainers as "
        "z-scores of the training split, as in a run; the figure is the same in either unit.",
    ]


def clustering(doc: dict[str, Any]) -> list[str]:
    """ml-expert's clustering (label removed) vs k-means told the true k: adjusted Rand index."""
    rows = [[r["data"], num(r.get("rows")), num(r.get("true_k")), num(r.get("k")),
             r.get("chosen_model") or "–", r.get("status") or "–", num(r.get("test_silhouette"), 3),
             num(r.get("stability"), 3),
             num(r.get("ari_all_rows"), 3), num(r.get("kmeans_true_k_ari_all_rows"), 3),
             num(r.get("ari_test_rows"), 3), num(r.get("kmeans_true_k_ari_test_rows"), 3),
             num(r.get("wall_seconds"), 1)] for r in doc["rows"]]  # fmt: skip
    header = ["data", "rows", "true k", "k chosen", "model", "status", "test silhouette", "stability",
              "ARI all rows", "k-means true k: ARI all", "ARI test rows", "k-means true k: ARI test",
              "wall s"]  # fmt: skip
    notes = [r for r in doc["rows"] if r.get("reason") or r.get("error")]
    out = table(header, rows)
    out += ["", "ARI: adjusted Rand index against the removed label (1 = the classes exactly, "
            "0 = chance). ml-expert chooses k itself by validation silhouette; the reference is told "
            "the true k."]  # fmt: skip
    out += [f"- {r['data']}: {r.get('reason') or r.get('error')}" for r in notes]
    return out


def gpu_checks(results: Path) -> list[str]:
    """The GPU checks (`benchmarks/gpu_check.py`), run on a lent GPU machine: no `make bench` step."""
    files = sorted(p for p in results.glob("gpu_check*.json") if "throughput" not in p.name)
    if not files:
        return ["Not measured: no `benchmarks/results/gpu_check*.json` (needs a GPU machine)."]
    out = [
        "Run by hand on a lent GPU machine (no TensorFlow there: Keras on torch or jax), with the "
        "command shown per file; the Keras, pydantic and h5py wheels pinned in `pyproject.toml` "
        "were carried to it. Pass/fail for the text part: validation accuracy of the exported "
        "float32 copy >= 0.9 and its largest probability difference to the trained model < 0.02.",
        "",
    ]
    rows = []
    for path in files:
        doc = json.loads(path.read_text())
        hardware = doc.get("hardware", {})
        part = doc.get("part", "dense")
        backend = hardware.get("backend", "?")
        env = f"KERAS_BACKEND={backend}" + (" GPU_CHECK_PART=text" if part == "text" else "")
        checks = doc.get("checks", {})
        for run in doc.get("runs", []):
            key = f"{run.get('architecture', 'dense')}{'_mixed' if run['mixed_precision'] else ''}"
            usage = run.get("gpu_utilisation") or {}
            accuracy = run.get("val_accuracy_float32_copy", run.get("final_val_accuracy"))
            rows.append([f"`{path.name}` ({doc.get('started', '?')[:10]}, `{env}`)",
                         hardware.get("device_used", "?"), run.get("architecture", "dense"),
                         "yes" if run["mixed_precision"] else "no", run.get("epochs"),
                         num(run.get("train_seconds"), 1), num(accuracy, 4),
                         num(run.get("float32_copy_max_abs_diff"), 6),
                         f"{num(usage.get('mean_pct'), 1)} / {num(usage.get('max_pct'), 0)}",
                         num(usage.get("max_memory_mb"), 0),
                         verdict(checks.get(key)) if key in checks else "–"])  # fmt: skip
    header = ["file, date, command", "device", "model", "mixed precision", "epochs", "train s",
              "val accuracy", "float32 copy max diff", "GPU util mean / max %", "GPU MB",
              "check"]  # fmt: skip
    out += table(header, rows)
    out += [
        "",
        "Command: `KERAS_BACKEND=... [GPU_CHECK_PART=text] python benchmarks/gpu_check.py` (writes "
        "`$OUT/gpu_check*.json`, copied here). GPU MB under jax is what its allocator reserves "
        "(75 % of the card by default), not what the model needs.",
    ]
    return out


def gpu_throughput(results: Path) -> list[str]:
    """Issue #16's GPU targets (`GPU_CHECK_PART=throughput`), run by hand on a lent GPU machine."""
    files = sorted(results.glob("gpu_check_throughput_*.json"))
    if not files:
        return [
            "Not measured: no `benchmarks/results/gpu_check_throughput_*.json`. It needs a GPU machine "
            "(`KERAS_BACKEND=jax GPU_CHECK_PART=throughput python benchmarks/gpu_check.py`); none was "
            "lent to the session that wrote it."
        ]
    rows = []
    for path in files:
        doc = json.loads(path.read_text())
        device = doc.get("hardware", {}).get("device_used", "?")
        for run in doc.get("runs", []):
            checks = doc.get("checks", {}).get(run["model"], {})
            chosen, bare = run["ml_expert_chosen"], run["bare"]
            steady = chosen.get("steady_utilisation") or chosen.get("gpu_utilisation") or {}
            whole = chosen.get("gpu_utilisation") or {}
            met = checks.get("met", {})
            rows.append([f"`{path.name}`", device, run["model"], run["rows"], chosen["batch_size"],
                         run["plan"]["steps_per_execution"],
                         f"{num(steady.get('mean_pct'), 1)} / {num(steady.get('p10_pct'), 1)}",
                         num(whole.get("mean_pct"), 1),
                         num(chosen.get("steady_samples_per_second") or chosen["samples_per_second"], 0),
                         num(bare.get("steady_samples_per_second") or bare["samples_per_second"], 0),
                         num(checks.get("throughput_vs_bare_same_batch"), 3),
                         num(checks.get("whole_run_vs_bare_same_batch"), 3),
                         num(checks.get("throughput_vs_before_16"), 2),
                         num(checks.get("whole_run_vs_before_16"), 2),
                         num(checks.get("val_accuracy_gap_to_float32_single_step"), 4),
                         ", ".join(f"{k}: {verdict(v)}" for k, v in met.items())])  # fmt: skip
    header = ["file", "device", "model", "rows", "batch", "steps per call",
              "GPU util % mean / p10 (steady)", "GPU util % mean (whole run)",
              "samples/s chosen (steady)", "samples/s bare fit (steady)", "vs bare, same batch (steady)",
              "vs bare (whole run)", "vs before #16 (steady)", "vs before #16 (whole run)",
              "accuracy gap", "targets (steady)"]  # fmt: skip
    notes = [
        "",
        "Steady = the epochs after the first: the first holds XLA compilation and GPU autotuning, a "
        "one-off cost per process and shape in every variant, the bare script included. Whole run = "
        "build, compile and every epoch.",
    ]
    return table(header, rows) + notes


def training_cpu(results: Path) -> list[str]:
    """Steps per call on the CPU (`benchmarks/training_cpu.py`): the CPU path must not slow down."""
    path = results / "training_cpu.json"
    if not path.exists():
        return ["Not measured: `benchmarks/results/training_cpu.json` does not exist."]
    doc = json.loads(path.read_text())
    rows = [
        [name, case["rows"], case["epochs"], case["steps_per_execution"]["after"],
         num(case["first_epoch_ratio_after_over_before"], 3),
         num(case["later_epoch_ratio_after_over_before"], 3),
         verdict(case["later_epoch_ratio_after_over_before"] <= 1.05)]
        for name, case in doc["cases"].items()
    ]  # fmt: skip
    header = ["data", "rows", "epochs", "steps per call", "first epoch after/before",
              "later epochs after/before", "not slower (<= 1.05)"]  # fmt: skip
    return context(doc) + table(header, rows)


def networks(doc: dict[str, Any]) -> list[str]:
    """benchmarks/networks.py: conv vs LSTM vs Transformer; fine-tuned vs from scratch."""
    out = [
        "Each reader trained by the pipeline's train_dnn (same callbacks, early stopping) on the "
        "pipeline's prepared splits; accuracy on the held-out test split.",
        "",
    ]
    readers = doc.get("readers") or []
    printed = RESULTS / "networks-readers-stdout.jsonl"
    if not readers and printed.is_file():  # a later `--parts finetune` run rewrote networks.json
        readers = [json.loads(line) for line in printed.read_text().splitlines() if line.strip()]
        out[-1:-1] = [
            "The readers' rows below are those `networks.py --parts readers` printed (kept in "
            "`results/networks-readers-stdout.jsonl`); networks.json holds the later fine-tuning run.",
        ]
    rows = [
        [r["data"], r["rows"], r["seed"], r["reader"], r["params"], r["epochs"], num(r["train_seconds"], 1),
         num(r["seconds_per_epoch"], 2), num(r["val_accuracy"]), num(r["test_accuracy"])]
        for r in readers
    ]  # fmt: skip
    out += table(
        ["data", "rows", "seed", "reader", "params", "epochs", "train s", "s / epoch", "val accuracy",
         "test accuracy"],
        rows,
    )  # fmt: skip
    runs = doc.get("finetune", [])
    network = "with the network (`--dnn`)" if any(r.get("network") for r in runs) else "`--no-dnn`"
    out += [
        "",
        "Fine-tuning: each dataset sorted by one column; release v1 on the lower 60 %, then the upper "
        "60 % from scratch and with `--from production` (same seed: the same test rows), "
        f"{network}. Scores: accuracy, R² for regression, on the new sample's test rows.",
        "",
    ]
    rows = [
        [r.get("dataset", "breast_cancer"), r.get("sorted_by", "mean area"), r["seed"],
         r.get("metric", "accuracy"), r.get("released_model", "–"),
         num(r.get("released_on_new_test", r.get("released_on_new_test_accuracy"))),
         f"{r['from_scratch_chosen']}", num(r.get("from_scratch_test", r.get("from_scratch_test_accuracy"))),
         num(r["from_scratch_run_seconds"], 1), f"{r['fine_tune_run_chosen']}",
         num(r.get("fine_tune_run_test", r.get("fine_tune_run_test_accuracy"))),
         num(r["fine_tune_run_seconds"], 1), num(r.get("fine_tuned_val", r.get("fine_tuned_val_accuracy"))),
         num(r.get("best_scratch_val", r.get("best_scratch_val_accuracy"))),
         num(r["fine_tune_fit_seconds"], 3), r["fine_tune_how"]]
        for r in runs
    ]  # fmt: skip
    out += table(
        ["data", "sorted by", "seed", "metric", "v1", "v1 on new test", "from scratch: chosen", "test",
         "run s", "--from: chosen", "test", "run s", "fine-tuned val", "best scratch val",
         "fine-tune fit s", "how"],
        rows,
    )  # fmt: skip
    return out


TITLES = {
    "startup": "Start-up of the light commands",
    "quality": "Quality at equal time",
    "bagging": "A bag of k fold fits against one refit on all rows (binary sets, test split)",
    "overhead": "Overhead of the orchestration",
    "inference": "Inference in process",
    "serving": "Serving over HTTP",
    "scale": "Scale",
    "clustering": "Clustering against the true labels",
    "networks": "Sequence readers and fine-tuning",
    "cluster": "On a Ray cluster (two nodes on this machine)",
    "network_tolerance": "The data-parallel network against one process (accuracy; regression: RMSE / std)",
}
RENDER = {
    "startup": startup,
    "quality": quality,
    "bagging": bagging,
    "overhead": overhead,
    "inference": inference,
    "scale": scale,
    "clustering": clustering,
    "networks": networks,
    "cluster": cluster,
    "network_tolerance": network_tolerance,
}


def render(results: Path) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; no figure here is "
        "typed by hand. `make bench` reruns every benchmark and regenerates this file; "
        "`benchmarks/README.md` says what each one measures.",
        "",
    ]
    for name in ORDER:
        path = results / f"{name}.json"
        doc = json.loads(path.read_text()) if path.exists() else None
        lines += [f"## {TITLES[name]}", ""]
        if name == "serving":
            if doc is not None:
                lines += context(doc)
            lines += serving(doc)
        elif doc is None:
            lines.append(f"Not measured: `benchmarks/results/{name}.json` does not exist.")
        else:
            lines += context(doc) + RENDER[name](doc)
        lines.append("")
        if name in (
            "quality",
            "scale",
            "network_tolerance",
            "cluster",
        ):  # extra runs (other budgets, subsets, sizes), e.g. quality-digits-b60.json
            for extra in sorted(results.glob(f"{name}-*.json")):
                lines += [f"### Additional {name} run: `{extra.name}`", ""]
                extra_doc = json.loads(extra.read_text())
                lines += context(extra_doc) + RENDER[name](extra_doc) + [""]
    lines += ["## GPU checks", ""] + gpu_checks(results) + [""]
    lines += ["## Keeping the GPU busy (GPU_CHECK_PART=throughput)", ""] + gpu_throughput(results) + [""]
    lines += ["## Training on the CPU: steps per call", ""] + training_cpu(results) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    args.output.write_text(render(args.results))
    return args.output


if __name__ == "__main__":
    print(main())
