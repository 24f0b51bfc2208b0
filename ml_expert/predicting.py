"""Batch prediction from a CSV through a deployment package (onnxruntime, hash-checked).

The package is named as for `serve`: production, a version, a run id or a folder."""

from __future__ import annotations

from pathlib import Path

from ml_expert.errors import DataError, IntegrityError, UsageError
from ml_expert.registry import resolve_package


def predict_file(
    model: str, data: str, output: Path, proba: bool = False, workspace: str | Path | None = None
) -> int:
    import pandas as pd

    from ml_expert.runtime import inference
    from ml_expert.tools.data.loading import load_table

    package, _ = resolve_package(model, workspace)
    try:
        runtime = inference.ModelInference(str(package))
    except inference.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc
    names = tuple(dict.fromkeys(c["name"] for c in runtime.schema["columns"]))
    frame, _ = load_table(data, columns=names)
    target = runtime.schema.get("target")
    if target and target in frame.columns:
        frame = frame.drop(columns=[target])
    try:
        labels = runtime.predict(frame)
        column = "cluster" if runtime.task == "clustering" else "prediction"
        out = pd.DataFrame({column: labels})
        if proba and runtime.task == "clustering":  # distance_<c> (k-means) or probability_<c>
            _, scores = runtime.predict_with_proba(frame)
            prefix = "distance" if runtime.scores_kind == "distances" else "probability"
            for c in range(scores.shape[1]):
                out[f"{prefix}_{c}"] = scores[:, c]
        elif proba:
            if runtime.schema.get("task") != "classification":
                raise UsageError("--proba applies to classification models only")
            probabilities = runtime.predict_proba(frame)
            for i, cls in enumerate(runtime.classes):
                out[f"proba_{cls}"] = probabilities[:, i]
    except inference.SchemaError as exc:
        raise DataError(f"{data}: {exc}") from exc
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output, index=False)
    return len(out)
