"""Write every export, reload it from disk, and check it predicts what the trained model does.

An export that cannot be reloaded, or that reloads and predicts differently, is worse than
none: the release gate ships only exports whose ExportRecord passed. Each export is written,
hashed, loaded into a fresh object from the file alone and run on the same raw reference rows
as the in-memory model. A failure is recorded (error, passed=False), never raised, so one
broken format does not hide the results of the others.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, computed_field

from ml_expert.hashing import sha256_tree
from ml_expert.tools.data.schema import InputSchema, to_model_frame, to_onnx_feed
from ml_expert.tools.validation.latency import Latency

PROBABILITY_TOLERANCE = 1e-4
"""Largest allowed absolute difference of any class probability. Exports compute in float32
(ONNX, TFLite) or reorder float operations; measured differences here are about 1e-7, so
1e-4 leaves room for other hardware while still catching a wrong preprocessing step."""

REGRESSION_RELATIVE_TOLERANCE = 1e-4
"""Largest allowed absolute difference of a regression prediction, as a fraction of the
target scale (the largest absolute reference prediction; 1.0 when all are 0). float32 keeps
about 7 significant digits, so exports differ by ~1e-7 of the prediction's magnitude."""

TIE_MARGIN_FACTOR = 2.0
"""Labels must be equal, except where the reference's top-two probability margin is under
TIE_MARGIN_FACTOR * PROBABILITY_TOLERANCE: each of the two probabilities may move by up to the
tolerance, so such a near-tie may flip without any real disagreement. These rows count as
agreeing and are reported in ParityResult.near_ties and note."""


class ParityResult(BaseModel):
    passed: bool
    n_rows: int = 0
    label_agreement: float | None = None
    max_abs_diff: float | None = None
    tolerance: float | None = None
    near_ties: int = 0
    note: str | None = None


class ExportLatency(Latency):
    """An export's latency, timed on the reloaded file (measure_export_latency): the figures, what one
    call takes, and the file's size."""

    input: str  # "typed DataFrame, preprocessing inside, one OpenMP thread", ...
    size_bytes: int | None


class LatencyFailure(BaseModel):
    """An export that passed parity but could not be timed: why (the report shows it)."""

    model_config = ConfigDict(extra="forbid")

    error: str


class ExportRecord(BaseModel):
    format: str
    path: str
    sha256: str | None = None
    size_bytes: int | None = None
    parity: ParityResult
    error: str | None = None
    latency: ExportLatency | LatencyFailure | None = None
    # False when the format cannot hold the architecture: its file is deleted, the release says so
    # and ships the other formats (see withdraw_unsupported); the release gate judges shipped ones.
    shipped: bool = True
    not_shipped_reason: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return self.error is None and self.parity.passed


Reference = dict[str, np.ndarray]
"""Predictions as {"label", "probabilities"} (classification), {"prediction"} (regression) or
{"cluster", "scores"} (clustering: distances or memberships)."""


# --------------------------------------------------------------------------------------------
# parity


def compare(reference: Reference, candidate: Reference, task: str) -> ParityResult:
    """Parity of an export's predictions against the in-memory model's, same rows."""
    if task == "clustering":
        return compare_clusters(reference, candidate)
    if task == "classification":
        ref_p = np.asarray(reference["probabilities"], dtype=np.float64)
        cand_p = np.asarray(candidate["probabilities"], dtype=np.float64)
        n_rows = len(ref_p)
        if cand_p.shape != ref_p.shape:
            return ParityResult(
                passed=False,
                n_rows=n_rows,
                tolerance=PROBABILITY_TOLERANCE,
                note=f"probabilities shape {cand_p.shape} != reference {ref_p.shape}",
            )
        max_diff = float(np.max(np.abs(ref_p - cand_p))) if n_rows else 0.0
        ref_label = np.asarray(reference["label"]).ravel()
        cand_label = np.asarray(candidate["label"]).ravel()
        differ = ref_label != cand_label
        near_ties = 0
        note = None
        if differ.any() and ref_p.shape[1] >= 2:
            top_two = np.sort(ref_p, axis=1)[:, -2:]
            margin = top_two[:, 1] - top_two[:, 0]
            excused = differ & (margin < TIE_MARGIN_FACTOR * PROBABILITY_TOLERANCE)
            near_ties = int(excused.sum())
            differ &= ~excused
            if near_ties:
                note = (
                    f"{near_ties} label(s) differ only on near-ties (top-two margin under "
                    f"{TIE_MARGIN_FACTOR * PROBABILITY_TOLERANCE:g}); counted as agreeing"
                )
        agreement = 1.0 - float(differ.mean()) if n_rows else 1.0
        passed = bool(max_diff <= PROBABILITY_TOLERANCE and agreement == 1.0)
        return ParityResult(
            passed=passed,
            n_rows=n_rows,
            label_agreement=agreement,
            max_abs_diff=max_diff,
            tolerance=PROBABILITY_TOLERANCE,
            near_ties=near_ties,
            note=note,
        )
    ref = np.asarray(reference["prediction"], dtype=np.float64).ravel()
    cand = np.asarray(candidate["prediction"], dtype=np.float64).ravel()
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    tolerance = REGRESSION_RELATIVE_TOLERANCE * (scale if scale > 0 else 1.0)
    if cand.shape != ref.shape:
        return ParityResult(
            passed=False,
            n_rows=len(ref),
            tolerance=tolerance,
            note=f"{cand.size} predictions for {ref.size} rows",
        )
    max_diff = float(np.max(np.abs(ref - cand))) if ref.size else 0.0
    return ParityResult(
        passed=bool(max_diff <= tolerance), n_rows=len(ref), max_abs_diff=max_diff, tolerance=tolerance
    )


def compare_clusters(reference: Reference, candidate: Reference) -> ParityResult:
    """Clusters equal, and distances (k-means) or memberships (mixture) within tolerance.

    The tolerance is PROBABILITY_TOLERANCE times the scores' scale (max |score|, at least 1). A
    cluster may differ only where the reference's scores of the two clusters are within twice
    the tolerance (a near-tie either side may resolve differently in float32)."""
    ref_s = np.asarray(reference["scores"], dtype=np.float64)
    cand_s = np.asarray(candidate["scores"], dtype=np.float64)
    n_rows = len(ref_s)
    tolerance = PROBABILITY_TOLERANCE * max(1.0, float(np.max(np.abs(ref_s))) if ref_s.size else 1.0)
    if cand_s.shape != ref_s.shape:
        return ParityResult(
            passed=False, n_rows=n_rows, tolerance=tolerance, note=f"scores {cand_s.shape} != {ref_s.shape}"
        )
    max_diff = float(np.max(np.abs(ref_s - cand_s))) if n_rows else 0.0
    ref_c = np.asarray(reference["cluster"]).ravel().astype(np.int64)
    cand_c = np.asarray(candidate["cluster"]).ravel().astype(np.int64)
    if cand_c.shape != ref_c.shape:
        return ParityResult(passed=False, n_rows=n_rows, tolerance=tolerance, note="cluster count differs")
    differ = ref_c != cand_c
    rows = np.arange(n_rows)
    valid = (cand_c >= 0) & (cand_c < ref_s.shape[1])
    gap = np.full(n_rows, np.inf)
    gap[valid] = np.abs(ref_s[rows[valid], ref_c[valid]] - ref_s[rows[valid], cand_c[valid]])
    excused = differ & (gap < TIE_MARGIN_FACTOR * tolerance)
    near_ties = int(excused.sum())
    differ &= ~excused
    agreement = 1.0 - float(differ.mean()) if n_rows else 1.0
    return ParityResult(
        passed=bool(max_diff <= tolerance and agreement == 1.0),
        n_rows=n_rows,
        label_agreement=agreement,
        max_abs_diff=max_diff,
        tolerance=tolerance,
        near_ties=near_ties,
        note=f"{near_ties} cluster(s) differ only on near-ties; counted as agreeing" if near_ties else None,
    )


def _from_probabilities(probabilities: Any) -> Reference:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return {"label": probabilities.argmax(axis=1), "probabilities": probabilities}


def _from_output(output: Any, task: str) -> Reference:
    """A Keras-like model's raw output as a Reference."""
    if isinstance(output, dict):
        if len(output) != 1:
            raise ValueError(f"expected one output, got {sorted(output)}")
        output = next(iter(output.values()))
    values = np.asarray(output)
    if task == "classification":
        return _from_probabilities(values)
    return {"prediction": values.astype(np.float64).ravel()}


def _onnx_predictions(path: Path, schema: InputSchema, frame: pd.DataFrame) -> Reference:
    """Run a saved ONNX file in a fresh onnxruntime session on the raw rows."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, to_onnx_feed(frame, schema)), strict=True))
    if schema.task == "clustering":
        return {"cluster": np.ravel(outputs["cluster"]), "scores": outputs[names[1]]}
    if schema.task == "classification":
        return {"label": outputs["label"], "probabilities": outputs["probabilities"]}
    return {"prediction": outputs["prediction"]}


def _record(
    fmt: str,
    path: Path,
    schema: InputSchema,
    reference: Reference,
    write: Callable[[], None],
    reload_predict: Callable[[], Reference],
) -> ExportRecord:
    """Write, hash, reload and compare one export; any exception becomes the record's error."""
    hashed = False
    sha = size = None
    try:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        write()
        sha, size = sha256_tree(path), _size(path)
        hashed = True
        parity = compare(reference, reload_predict(), schema.task)
        return ExportRecord(format=fmt, path=str(path), sha256=sha, size_bytes=size, parity=parity)
    except Exception as exc:  # recorded, not raised: the gate reads the record
        stage = "reload/predict" if hashed else "write"
        return ExportRecord(
            format=fmt,
            path=str(path),
            sha256=sha,
            size_bytes=size,
            parity=ParityResult(passed=False),
            error=f"{stage} failed: {type(exc).__name__}: {exc}",
        )


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# scikit-learn


def sklearn_reference(pipeline: Any, schema: InputSchema, frame: pd.DataFrame) -> Reference:
    model_frame = to_model_frame(frame, schema)
    if schema.task == "clustering":
        features, model = pipeline[:-1].transform(model_frame), pipeline.steps[-1][1]
        # k-means: the distance to each centre; a mixture: the membership probabilities
        proba = hasattr(model, "predict_proba")
        scores = model.predict_proba(features) if proba else model.transform(features)
        return {"cluster": np.asarray(model.predict(features)), "scores": np.asarray(scores, np.float64)}
    if schema.task == "classification":
        return {
            "label": np.asarray(pipeline.predict(model_frame)),
            "probabilities": np.asarray(pipeline.predict_proba(model_frame), dtype=np.float64),
        }
    return {"prediction": np.asarray(pipeline.predict(model_frame), dtype=np.float64).ravel()}


def sequential(pipeline: Any) -> Any:
    """The shipped model predicts on the caller's thread (`n_jobs=None`, set in place).

    The forest trains on every core, but a saved model that starts a thread pool per call pays
    for it on every request: one row through a 300-tree forest took 102 ms with `n_jobs=-1`
    against 56 ms without, on 2 cores, and a server with several workers would oversubscribe the
    machine. A caller predicting large batches can set `n_jobs` back on the loaded model."""
    inner = getattr(pipeline, "estimator_", pipeline)  # a FixedThresholdClassifier's pipeline
    for _, step in getattr(inner, "steps", [("model", inner)]):
        for part in (step, getattr(step, "regressor_", None)):  # a TransformedTargetRegressor's model
            if part is not None and "n_jobs" in part.get_params(deep=False):
                part.set_params(n_jobs=None)
    for member in getattr(inner, "estimators_", None) or []:  # an ensemble's fitted members
        if hasattr(member, "get_params"):
            sequential(member)
    return pipeline


def export_sklearn(
    pipeline: Any, schema: InputSchema, reference_frame: pd.DataFrame, out_dir: str | Path
) -> list[ExportRecord]:
    """joblib (model.joblib) and ONNX (model.onnx, preprocessing inside), each parity-checked."""
    import joblib
    import onnx

    from ml_expert.tools.deployment.onnx_export import sklearn_to_onnx

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reference = sklearn_reference(pipeline, schema, reference_frame)

    joblib_path = out / "model.joblib"
    onnx_path = out / "model.onnx"
    sequential(pipeline)
    return [
        _record(
            "joblib",
            joblib_path,
            schema,
            reference,
            lambda: joblib.dump(pipeline, joblib_path),
            lambda: sklearn_reference(joblib.load(joblib_path), schema, reference_frame),
        ),
        _record(
            "onnx",
            onnx_path,
            schema,
            reference,
            lambda: onnx.save(sklearn_to_onnx(pipeline, schema), str(onnx_path)),
            lambda: _onnx_predictions(onnx_path, schema, reference_frame),
        ),
    ]


# --------------------------------------------------------------------------------------------
# Keras


def keras_features(preprocessor: Any, schema: InputSchema, frame: pd.DataFrame) -> np.ndarray:
    """The float32 matrix Keras models take (same as at training time)."""
    return np.asarray(preprocessor.transform(to_model_frame(frame, schema)), dtype=np.float32)


def export_keras(
    model: Any, preprocessor: Any, schema: InputSchema, reference_frame: pd.DataFrame, out_dir: str | Path
) -> list[ExportRecord]:
    """.keras, .h5, SavedModel, TFLite (from the SavedModel) and composed ONNX, each checked.

    All but ONNX take the preprocessed matrix (the package ships ONNX, whose graph holds the
    preprocessing); ONNX is checked on the raw rows, so its preprocessing is checked too.
    """
    import keras
    import onnx

    import ml_expert.tools.training.sequence_models  # noqa: F401  (registers its layer for load_model)
    from ml_expert.tools.deployment.onnx_export import keras_to_onnx

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    features = keras_features(preprocessor, schema, reference_frame)
    reference = _from_output(model.predict_on_batch(features), schema.task)

    paths = {
        "keras": out / "model.keras",
        "h5": out / "model.h5",
        "savedmodel": out / "savedmodel",
        "tflite": out / "model.tflite",
        "onnx": out / "model.onnx",
    }

    def reload_keras(path: Path) -> Reference:
        # compile=False: inference only; a compiled "mse" loss string does not deserialize from .h5
        fresh = keras.models.load_model(str(path), compile=False)
        return _from_output(fresh.predict_on_batch(features), schema.task)

    def write_tflite() -> None:
        if not (paths["savedmodel"] / "saved_model.pb").is_file():
            raise FileNotFoundError("the TFLite export is converted from the SavedModel, which failed")
        paths["tflite"].write_bytes(_savedmodel_to_tflite(paths["savedmodel"]))

    return [
        _record(
            "keras",
            paths["keras"],
            schema,
            reference,
            lambda: model.save(str(paths["keras"])),
            lambda: reload_keras(paths["keras"]),
        ),
        _record(
            "h5",
            paths["h5"],
            schema,
            reference,
            lambda: _save_h5(model, paths["h5"]),
            lambda: reload_keras(paths["h5"]),
        ),
        _record(
            "savedmodel",
            paths["savedmodel"],
            schema,
            reference,
            lambda: model.export(str(paths["savedmodel"]), format="tf_saved_model", verbose=False),
            lambda: _from_output(_savedmodel_predict(paths["savedmodel"], features), schema.task),
        ),
        _record(
            "tflite",
            paths["tflite"],
            schema,
            reference,
            write_tflite,
            lambda: _from_output(_tflite_predict(paths["tflite"], features), schema.task),
        ),
        _record(
            "onnx",
            paths["onnx"],
            schema,
            reference,
            lambda: onnx.save(keras_to_onnx(model, preprocessor, schema), str(paths["onnx"])),
            lambda: _onnx_predictions(paths["onnx"], schema, reference_frame),
        ),
    ]


WITHDRAWABLE_FORMATS = frozenset({"h5", "savedmodel", "tflite"})
"""Formats a recurrent or attention network may lack (TFLite has no TensorList loop without select
ops, which the LiteRT interpreter here cannot run). `.keras` is Keras' own format and ONNX is what
the package serves, so neither is ever withdrawn: their failure fails the release."""


def withdraw_unsupported(records: list[ExportRecord], withdrawable: frozenset[str]) -> list[ExportRecord]:
    """Delete the file of each failed export whose format may be withdrawn and mark it not shipped,
    with the error as the reason: no half-verified file stays next to the ones that passed."""
    for record in records:
        if record.passed or record.format not in withdrawable:
            continue
        path = Path(record.path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        first_line = (record.error or (record.parity.note or "predictions differ")).splitlines()[0]
        record.shipped = False
        record.not_shipped_reason = f"{record.format} cannot hold this architecture here: {first_line[:300]}"
    return records


def _save_h5(model: Any, path: Path) -> None:
    """Legacy HDF5, for tools that still need it; Keras logs a 'legacy format' warning."""
    import logging

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        model.save(str(path))
    finally:
        absl.setLevel(level)


def _savedmodel_predict(path: Path, features: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    # Keep `loaded` alive while `serve` runs: its variables are freed with it (STACK.md).
    loaded = tf.saved_model.load(str(path))
    output = loaded.serve(tf.constant(features))
    if isinstance(output, dict):
        output = next(iter(output.values()))
    result = np.asarray(output)
    del loaded
    return result


def _savedmodel_to_tflite(path: Path) -> bytes:
    """The converter's MLIR errors go straight to file descriptor 2: caught there (the terminal
    shows ml-expert's progress) and put into the exception, so the record names the reason."""
    import os
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryFile() as caught:
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            return tf.lite.TFLiteConverter.from_saved_model(str(path)).convert()
        except Exception as exc:
            os.dup2(saved, 2)
            caught.seek(0)
            detail = [line for line in caught.read().decode(errors="replace").splitlines() if "error" in line]
            raise RuntimeError(f"{type(exc).__name__}: {(detail or [str(exc)])[-1][-500:]}") from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _tflite_predict(path: Path, features: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    (inp,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(inp["index"], list(features.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], features.astype(inp["dtype"]))
    interpreter.invoke()
    (out,) = interpreter.get_output_details()
    return np.array(interpreter.get_tensor(out["index"]))


# --------------------------------------------------------------------------------------------
# latency of each reloaded export

LATENCY_SAMPLE_ROWS = 50
"""Distinct rows cycled through by the single-row calls (so no cache sees one row only)."""


def _format_predictor(
    fmt: str, path: Path, schema: InputSchema, preprocessor: Any, frame: pd.DataFrame
) -> tuple[Callable[[Any], Any], list[Any], Any, str]:
    """A freshly loaded export, its single-row inputs, a batch input, and what the input is.

    Each format is timed on the input a server holding it would pass: the scikit-learn
    pipeline on a typed frame (preprocessing inside), ONNX on its raw-column tensors
    (preprocessing inside), the Keras family on the preprocessed float32 matrix.
    """
    rows = frame.iloc[: min(LATENCY_SAMPLE_ROWS, len(frame))]
    if fmt == "joblib":
        import joblib

        model = joblib.load(path)
        method = model.predict_proba if schema.task == "classification" else model.predict
        model_frame = to_model_frame(frame, schema)
        singles = [model_frame.iloc[[i]] for i in range(len(rows))]
        return method, singles, model_frame, "typed DataFrame, preprocessing inside, one OpenMP thread"
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        batch = to_onnx_feed(frame, schema)
        singles = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(len(rows))]
        return (
            (lambda feed: session.run(None, feed)),
            singles,
            batch,
            "raw-column tensors, preprocessing inside",
        )
    features = keras_features(preprocessor, schema, frame)
    singles = [features[i : i + 1] for i in range(len(rows))]
    what = "preprocessed float32 matrix"
    if fmt in ("keras", "h5"):
        import keras

        import ml_expert.tools.training.sequence_models  # noqa: F401  (registers its layer for load_model)

        model = keras.models.load_model(str(path), compile=False)
        return model.predict_on_batch, singles, features, what
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))

        def serve(x: np.ndarray) -> Any:
            return loaded.serve(tf.constant(x))  # `loaded` stays referenced by this closure

        return serve, singles, features, what
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        (inp,) = interpreter.get_input_details()
        (out,) = interpreter.get_output_details()
        shape = [0]

        def invoke(x: np.ndarray) -> Any:
            if shape[0] != len(x):
                interpreter.resize_tensor_input(inp["index"], list(x.shape))
                interpreter.allocate_tensors()
                shape[0] = len(x)
            interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
            interpreter.invoke()
            return interpreter.get_tensor(out["index"])

        return invoke, singles, features, what + " (tensor resized only when the batch size changes)"
    raise ValueError(f"no latency probe for format {fmt!r}")


def measure_export_latency(
    records: list[ExportRecord], schema: InputSchema, frame: pd.DataFrame, preprocessor: Any = None
) -> list[ExportRecord]:
    """Time every export that passed parity, reloaded from its file; a failure is recorded."""
    from threadpoolctl import threadpool_limits

    from ml_expert.tools.validation.latency import measure

    for record in records:
        if not record.passed:
            continue
        try:
            predict, singles, batch, what = _format_predictor(
                record.format, Path(record.path), schema, preprocessor, frame
            )
            # OpenMP's hand-off dominates a one-row scikit-learn call (STACK.md): limit it once
            # around the timing (entering threadpool_limits costs ~8 ms, more than the call).
            limits = threadpool_limits(1) if record.format == "joblib" else nullcontext()
            with limits:
                figures = measure(predict, singles, batch, len(frame))
            record.latency = ExportLatency(**figures.model_dump(), input=what, size_bytes=record.size_bytes)
        except Exception as exc:  # recorded: the report shows which format could not be timed
            record.latency = LatencyFailure(error=f"{type(exc).__name__}: {exc}")
    return records
