"""Deployment: export what ships, verify each export, measure its latency, write the package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml_expert.agents.context import AgentContext
from ml_expert.agents.ml_developer.common import json_safe, quiet_tensorflow
from ml_expert.config import RunConfig
from ml_expert.errors import PhaseResultError
from ml_expert.hashing import verify
from ml_expert.phases import DataResult, DeploymentResult, ReleaseSource, TrainingResult, ValidationResult
from ml_expert.runs import RunFile
from ml_expert.tools.data.prepare import load_split
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.data.splits import read_frame
from ml_expert.tools.deployment.exports import ExportRecord
from ml_expert.tools.environment import package_versions
from ml_expert.tools.selection.records import Candidate
from ml_expert.tools.training.finetune import network_preprocessor
from ml_expert.tools.validation.latency import Latency, measure


def _training_stats(data: DataResult, schema: InputSchema) -> str:
    """Aggregates of the training split for drift checks (quantiles, category shares; no rows)."""
    import json

    from ml_expert.tools.validation.drift import training_statistics

    train_x, _ = load_split(data.files, "train", schema, data.file_hashes)
    columns = [c.model_dump() for c in schema.columns]
    values = {c.name: train_x[c.key].tolist() for c in schema.columns}
    return json.dumps(training_statistics(columns, values), indent=1) + "\n"


def _package_latency(package_dir: Path, files: dict[str, str], data: DataResult) -> Latency:
    """Single-row and batch latency of the package itself, through inference.py (the serving path),
    on its staged files verified against `files` (the manifest is written after, with the figures)."""

    from ml_expert.runtime.inference import ModelInference

    model = ModelInference(package_dir, files=files)
    # rows as a caller sends them: raw column names, dates as text
    records = read_frame(data.files["val_raw"], data.file_hashes, "val_raw").to_dict(orient="records")
    return measure(model.predict, records[:50], records, len(records))


def _append_latency(run_dir: Path, records: list[ExportRecord], package: Latency | None) -> None:
    """Add the export latencies to metrics.json and evaluation_report.md (the tester's files).

    The tester runs before any export exists, so latency is measured here, on the reloaded
    export files, and the report is rendered again from its kept inputs with them."""
    import json

    from ml_expert.tools.validation.report_file import render_with_latency
    from ml_expert.tools.validation.report_inputs import LatencyRow

    # one label per export file: the model's folder and the format ("linear/onnx", "dnn/tflite")
    labelled = [(f"{Path(r.path).parent.name}/{r.format}", r) for r in records]
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        metrics["latency"] = {label: r.latency.model_dump() if r.latency else None for label, r in labelled}
        metrics["latency"]["package (inference.py)"] = package.model_dump() if package is not None else None
        metrics["model_size_bytes"] = {label: r.size_bytes for label, r in labelled}
        metrics_path.write_text(json.dumps(metrics, indent=2))
    shown = [
        LatencyRow.model_validate(
            {**(r.latency.model_dump() if r.latency else {}), "format": label, "size_bytes": r.size_bytes}
        )
        for label, r in labelled
    ]
    if package is not None:
        shown.append(
            LatencyRow(
                **package.model_dump(),
                format="package (inference.py)",
                size_bytes=_dir_size(run_dir / "deployment"),
                input="dict rows, schema-validated, preprocessing inside",
            )
        )
    render_with_latency(run_dir, shown)


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _preprocessing(chosen: Candidate, data: DataResult) -> tuple[str, str]:
    """(file, SHA-256) of the fitted preprocessing the chosen network's inputs come from."""
    own = data.files["preprocessor"], data.preprocessor_sha256
    return network_preprocessor(*own, chosen.preprocessor, chosen.preprocessor_sha256)


def _release_source(
    chosen: Candidate, training: TrainingResult, data: DataResult, shipped: list[ExportRecord]
) -> ReleaseSource | None:
    """What the registry keeps beside the package for a later `--from`: the verified loadable export
    (.keras or joblib) and, for a network, its preprocessing and training configuration."""
    wanted = "keras" if chosen.kind == "keras" else "joblib"
    export = next((r for r in shipped if r.format == wanted and r.passed and r.sha256), None)
    if export is None or export.sha256 is None:
        return None
    if wanted == "joblib":
        return ReleaseSource(
            kind="sklearn", files={"model.joblib": export.path}, sha256={"model.joblib": export.sha256}
        )
    preprocessor, preprocessor_sha = _preprocessing(chosen, data)
    config = chosen.dnn_config or (
        training.dnn.config.model_dump() if training.dnn and chosen.name == "dnn" else None
    )
    return ReleaseSource(
        kind="keras",
        files={"model.keras": export.path, "preprocessor.joblib": preprocessor},
        sha256={"model.keras": export.sha256, "preprocessor.joblib": preprocessor_sha},
        config=config,
    )


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

    data, training_result = DataResult.of(state), TrainingResult.of(state)
    validation = ValidationResult.of(state)
    schema = data.input_schema
    chosen = training_result.chosen
    # Parity and latency use the validation rows: the test split is read once, by the tester.
    reference, _ = load_split(data.files, "val", schema, data.file_hashes)
    exports_dir = ctx.run_dir / "exports"
    records: list[ExportRecord] = []
    onnx_path: str | None = None
    # Only what ships is exported (and judged by the release gate): a network that was trained
    # but not chosen is not converted, so its failed conversion cannot refuse the chosen model.
    dnn = training_result.dnn if chosen.kind == "keras" else None
    network = chosen.kind == "keras"  # the scratch network, or one fine-tuned from a .keras file
    if chosen.kind == "sklearn":
        pipeline = joblib.load(chosen.verified())
        ctx.step(f"exporting {chosen.name}: joblib, ONNX")
        sk_records = export_sklearn(pipeline, schema, reference, exports_dir / chosen.name)
        ctx.step("timing each reloaded export")
        measure_export_latency(sk_records, schema, reference)
        records += sk_records
        onnx_path = next((r.path for r in sk_records if r.format == "onnx"), None)
    if network:
        quiet_tensorflow()
        import keras

        import ml_expert.tools.training.sequence_models  # noqa: F401  (registers its layer for load_model)

        # the network refit on train + validation (or the train-only one)
        model = keras.saving.load_model(chosen.verified())
        # a network fine-tuned from a release reads the release's preprocessing, kept with it
        preprocessor_file, preprocessor_sha = _preprocessing(chosen, data)
        verify(preprocessor_file, preprocessor_sha)
        preprocessor = joblib.load(preprocessor_file)
        ctx.step("exporting the Keras DNN: .keras, .h5, SavedModel, TFLite, ONNX")
        k_records = export_keras(model, preprocessor, schema, reference, exports_dir / "dnn")
        if dnn and dnn.config.sequence_layer != "conv":
            for record in withdraw_unsupported(k_records, WITHDRAWABLE_FORMATS):
                if not record.shipped:
                    ctx.decide(f"do not ship the {record.format} export", record.not_shipped_reason or "")
        ctx.step("timing each reloaded export")
        measure_export_latency(k_records, schema, reference, preprocessor)
        records += k_records
        onnx_path = next((r.path for r in k_records if r.format == "onnx"), None)
    for record in records:
        ctx.emit("export", format=record.format, passed=record.parity.passed)
    package_dir = ctx.run_dir / "deployment"
    manifest: dict[str, Any] = {}
    package_latency: Latency | None = None
    # Every export of the shipped model must pass; one failed format stops the package.
    shipped_dir = exports_dir / (chosen.name if chosen.kind == "sklearn" else "dnn")
    shipped = [r for r in records if Path(r.path).parent == shipped_dir and r.shipped]
    chosen_ok = onnx_path is not None and all(r.passed for r in shipped)
    if chosen_ok:
        run = RunFile(ctx.run_dir).read()
        extra_files = {
            "server.py": server_source().read_text(encoding="utf-8"),
            "Dockerfile": dockerfile_text(),
            "training_stats.json": _training_stats(data, schema),
        }
        if data.task == "clustering":  # aggregates over >= 5 training rows (the tester's)
            if validation.profiles_path is None:
                raise PhaseResultError("the clustering validation result names no cluster profiles")
            extra_files["cluster_profiles.json"] = Path(validation.profiles_path).read_text()
        metadata = {
            "run_id": ctx.run_id,
            "model": chosen.name,
            "task": data.task,
            "primary_metric": validation.primary_metric,
            "test_score": validation.test_score,
            "metrics": validation.numeric_metrics,
            "seed": RunConfig.of(state).seed,
            "data_fingerprint": data.fingerprint,
            "split_sizes": data.split_sizes.model_dump(),
            "package_versions": package_versions(),
            "created": run.created,
            "model_size_bytes": Path(onnx_path).stat().st_size,
        }
        hardware = json_safe(run.manifest.get("hardware") or {})

        def timed(staged_dir: Path, files: dict[str, str]) -> dict[str, Any]:
            nonlocal package_latency
            ctx.step("timing the package through inference.py")
            package_latency = _package_latency(staged_dir, files, data)
            return {"latency": package_latency.model_dump(), "measured_on": hardware}

        manifest = write_package(package_dir, Path(onnx_path), schema, metadata, extra_files, measure=timed)
        ctx.decide(
            "package the ONNX export of " + chosen.name,
            "one graph with the preprocessing inside, served by onnxruntime alone",
        )
    _append_latency(ctx.run_dir, records, package_latency)
    result = DeploymentResult(
        exports=[r.model_dump() for r in records],  # as written: every key set (the state dumps set keys)
        package_dir=str(package_dir) if manifest else None,
        manifest=manifest,
        model=chosen.name,
        package_latency=package_latency,
        source=_release_source(chosen, training_result, data, shipped) if manifest else None,
    )
    ctx.record("deployment", result.state())
    passed = sum(1 for r in records if r.parity.passed)
    ctx.done(f"{passed}/{len(records)} exports reloaded and matched")
    return {"deployment": result.state(), "phase": "deployment"}
