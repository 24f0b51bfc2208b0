"""`--from production|VERSION`: the released model as a starting point, checked, continued and compared.

The registry names the release; its run's deployment finding names the exported model file and its
SHA-256, which is verified before the file is loaded. The released model competes as it is and
fine-tuned (tools/training/finetune.py) against the models trained from scratch on the new data's
validation split; the tester also scores current production on the new test split, and the release
gate compares with that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ml_expert.config import RunConfig
from ml_expert.errors import UsageError
from ml_expert.hashing import sha256_file, verify
from ml_expert.phases import DataResult
from ml_expert.registry import Registry, RegistryError
from ml_expert.tools.data.schema import InputSchema


class ReleasedModel(BaseModel):
    version: str
    run_id: str
    model: str  # the released model's name in its run (random_forest, dnn, ...)
    kind: str  # "sklearn" or "keras"
    path: str
    sha256: str
    schema_: InputSchema
    test_score: float | None = None
    primary_metric: str | None = None
    model_name: str | None = None  # the registry's name of the released model (its production line)


def resolve_release(name: str, workspace: str | Path) -> ReleasedModel:
    """The released model behind `production` or `v3`, with the verified file it was exported to."""
    if name.endswith(".keras"):
        raise UsageError(
            f"--from {name}: starting from a .keras file is not supported yet; give production or a version"
        )
    registry = Registry(workspace)
    try:
        info = registry.show(name)
    except RegistryError as exc:
        raise UsageError(f"--from {name}: {exc.message}") from None
    package = Path(info["path"])
    schema = InputSchema.model_validate_json((package / "schema.json").read_text())
    run_dir = Path(workspace) / "runs" / str(info.get("run_id"))
    finding = run_dir / "findings" / "deployment.json"
    if not finding.is_file():
        raise UsageError(
            f"--from {name}: the run {info.get('run_id')} that released it is not in this workspace"
        )
    deployment = json.loads(finding.read_text())
    deployment = deployment.get("value", deployment)
    model = info["model"]
    wanted = "joblib" if model != "dnn" else "keras"
    record = next(
        (
            e
            for e in deployment.get("exports", [])
            if e["format"] == wanted and Path(e["path"]).parent.name == model and e.get("passed")
        ),
        None,
    )
    if record is None or not Path(record["path"]).is_file():
        raise UsageError(f"--from {name}: the exported {model} model of run {info.get('run_id')} is gone")
    return ReleasedModel(
        version=info["version"],
        run_id=str(info["run_id"]),
        model=model,
        kind="keras" if model == "dnn" else "sklearn",
        path=record["path"],
        sha256=record["sha256"],
        schema_=schema,
        test_score=info.get("test_score"),
        primary_metric=info.get("primary_metric"),
        model_name=info.get("model_name"),
    )


def check_schema(name: str, workspace: str | Path, new: InputSchema) -> ReleasedModel:
    """A usage error naming what differs when the new data cannot feed the released model."""
    from ml_expert.tools.training.finetune import schema_differences

    released = resolve_release(name, workspace)
    differences = schema_differences(released.schema_, new)
    if differences:
        raise UsageError(
            f"--from {name} ({released.version}): the new data does not match the released model's inputs: "
            + "; ".join(differences)
        )
    if released.kind != "sklearn":
        raise UsageError(
            f"--from {name} ({released.version}) is a Keras network; fine-tuning a released network "
            "in the pipeline is not supported yet (tools/training/finetune.continue_keras does it in Python)"
        )
    return released


def candidates(
    ctx: Any, state: dict[str, Any], schema: InputSchema, metric: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The released model as it is and fine-tuned on the new training split, each scored on the new
    validation split; returns the candidates and the record of what was done."""
    import joblib

    from ml_expert.tools.data.prepare import load_split
    from ml_expert.tools.scoring import predict_scores, score
    from ml_expert.tools.training.finetune import continue_sklearn

    config = RunConfig.of(state)
    released = check_schema(config.from_ or "production", config.workspace, schema)
    data = DataResult.of(state)
    train_x, train_y = load_split(data.files, "train", schema, data.file_hashes)
    val_x, val_y = load_split(data.files, "val", schema, data.file_hashes)
    models_dir = ctx.run_dir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    out: list[dict[str, Any]] = []
    for name in ("released", "fine_tuned"):
        verify(released.path, released.sha256)
        pipeline = joblib.load(released.path)
        detail, seconds = f"{released.version} as released", 0.0
        if name == "fine_tuned":
            pipeline, how = continue_sklearn(pipeline, train_x, train_y)
            detail, seconds = f"{released.version} continued: {how.detail}", how.fit_seconds
            ctx.decide(f"fine-tune {released.model} from {released.version}", how.detail)
        path = models_dir / f"{name}.joblib"
        joblib.dump(pipeline, path)
        out.append(
            {
                "name": name,
                "family": "released",
                "kind": "sklearn",
                "val_score": round(score(metric, val_y, predict_scores(pipeline, val_x)), 6),
                "train_score": round(score(metric, train_y, predict_scores(pipeline, train_x)), 6),
                "fit_seconds": seconds,
                "path": str(path),
                "sha256": sha256_file(path),
                "parent": released.version,
                "detail": detail,
            }
        )
    record = {
        "parent": released.version,
        "parent_model": released.model,
        "parent_run": released.run_id,
        # a fine-tuned model is a new version of the same named model, not a model of its own
        "model_name": released.model_name,
    }
    return out, record


def compete(
    metric: str, chosen: dict[str, Any], reason: str, released: list[dict[str, Any]]
) -> tuple[dict[str, Any], str]:
    """The released model (as it is or fine-tuned) ships instead of the model from scratch only when
    it scores strictly better on the new validation rows; ties go to the model from scratch."""
    from ml_expert.tools.scoring import better

    best = released[0]
    for candidate in released[1:]:
        if better(metric, candidate["val_score"], best["val_score"]):
            best = candidate
    if better(metric, best["val_score"], chosen["val_score"]):
        return best, (
            f"{best['name']} ({best['detail']}) validation {metric} {best['val_score']:.4f} beats the "
            f"model from scratch, {chosen['name']} {chosen['val_score']:.4f}"
        )
    return chosen, (
        f"{reason}; the model from scratch {chosen['val_score']:.4f} is at least as good on validation "
        f"as {best['name']} {best['val_score']:.4f}"
    )


def production_on_test(state: dict[str, Any], test_x: Any, test_y: Any, metric: str) -> dict[str, Any] | None:
    """Current production's score on this run's test rows (read once, with the chosen model's),
    when it takes the same inputs: what the release gate compares a fine-tuned model with."""
    import joblib

    from ml_expert.tools.scoring import predict_scores, score

    try:
        released = resolve_release("production", RunConfig.of(state).workspace)
    except UsageError:
        return None
    from ml_expert.tools.training.finetune import schema_differences

    schema = DataResult.of(state).input_schema
    if released.kind != "sklearn" or schema_differences(released.schema_, schema):
        return None
    verify(released.path, released.sha256)
    model = joblib.load(released.path)
    return {"version": released.version, "test_score": score(metric, test_y, predict_scores(model, test_x))}
