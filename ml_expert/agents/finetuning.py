"""`--from production|VERSION|FILE.keras`: a released model as a starting point, checked, continued
and compared.

A `.keras` file (a network trained elsewhere, or a run's models/dnn.keras) is read by the new run's
own preprocessing: it is accepted when its input width is the run's feature count and its outputs
are the run's classes, or, for regression, one output through the `target_scale` layer every
ml-expert regression network is served with (a regressor without it has no known output scale).

The registry names the release. A version keeps, beside the package it serves (ONNX), the loadable
model in its `source/` folder with the SHA-256 of each file (registry/store.py): a scikit-learn
pipeline's joblib, or a network's `.keras` with the fitted preprocessing its inputs come from and the
configuration it was trained with. A released network reads the new rows through that preprocessing,
not the new run's, so its weights see the features they learned on; it continues at a tenth of the
learning rate it was trained with. A regression network learnt z-scores of its training split's
target and is served through a `target_scale` layer holding that split's mean and std: it continues
on the new targets standardised with the release's mean and std, never the new rows' own (its
weights only mean something on that scale), and ships through the same layer (continue_keras).
Versions registered before `source/` existed are found through
their run's deployment finding, as before. The released model competes as it is and
fine-tuned (tools/training/finetune.py) against the models trained from scratch on the new data's
validation split; the tester also scores current production on the new test split, and the release
gate compares with that.

A release that reads a free-text column reads it with its vocabulary. The data phase counts the new
training tokens that vocabulary misses, beside what a vocabulary learnt from the same rows misses
(tools/data/text.py's VocabularyCheck): within VOCABULARY_EXCESS_LIMIT the run reads the text as the
release does and it is fine-tuned. Past it, a released text network's vocabulary is extended by the
new rows' words (appended after its ids, VOCABULARY_EXTENSION_MAX_FACTOR) and its embedding by fresh
rows (_extended), and the extended network is fine-tuned; otherwise (a bag of words, a scikit-learn
model, too many new words) the run learns the new vocabulary and the release is no candidate
(not_fine_tuned). Either way past the limit, the gate scores the release on the same test rows read
with its own vocabulary.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, TypeVar

import joblib
import numpy as np
from pydantic import BaseModel

from ml_expert.config import RunConfig
from ml_expert.errors import PhaseResultError, UsageError
from ml_expert.hashing import sha256_file, verify
from ml_expert.phases import (
    DataResult,
    DeploymentResult,
    FineTuning,
    PreparationFinding,
    SelectionResult,
    TrainingResult,
)
from ml_expert.registry import Registry, RegistryError
from ml_expert.registry.records import VersionRecord
from ml_expert.registry.store import SOURCE_DIR
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.data.text import VocabularyCheck, VocabularyExtension
from ml_expert.tools.selection.records import Candidate
from ml_expert.tools.validation.metrics import ProductionOnTest


class ReleasedModel(BaseModel):
    version: str
    run_id: str
    model: str  # the released model's name in its run (random_forest, dnn, ...)
    kind: str  # "sklearn" or "keras"
    path: str
    sha256: str
    schema_: InputSchema | None = None  # None: a .keras file, checked by its input and output widths
    test_score: float | None = None
    primary_metric: str | None = None
    model_name: str | None = None  # the registry's name of the released model (its production line)
    preprocessor: str | None = None  # a released network: the fitted preprocessing its inputs come from
    preprocessor_sha256: str | None = None
    config: dict[str, Any] | None = None  # a released network: the DNNConfig it was trained with


def resolve_release(name: str, workspace: str | Path) -> ReleasedModel:
    """The released model behind `production` or `v3`, with the verified file it was exported to."""
    if name.endswith(".keras"):
        file = Path(name).expanduser().resolve()
        if not file.is_file():
            raise UsageError(f"--from {name}: no such .keras file")
        return ReleasedModel(
            version=f"file {file.name}", run_id="", model="dnn", kind="keras", path=str(file),
            sha256=sha256_file(file),
        )  # fmt: skip
    registry = Registry(workspace)
    try:
        info = registry.record(name)
    except RegistryError as exc:
        raise UsageError(f"--from {name}: {exc.message}") from None
    if info.run_id is None or info.model is None:
        raise UsageError(f"--from {name}: {info.version}'s version.json names no run_id or model")
    package = registry.path(info.version)
    schema = InputSchema.model_validate_json((package / "schema.json").read_text())
    common = {
        "version": info.version,
        "run_id": info.run_id,
        "model": info.model,
        "schema_": schema,
        "test_score": info.test_score,
        "primary_metric": info.primary_metric,
        "model_name": info.model_name,
    }
    kept = info.source
    if kept:  # the loadable model the registry keeps beside the package
        folder, files = package / SOURCE_DIR, kept.files
        if kept.kind == "keras":
            return ReleasedModel(
                **common, kind="keras", path=str(folder / "model.keras"), sha256=files["model.keras"],
                preprocessor=str(folder / "preprocessor.joblib"),
                preprocessor_sha256=files["preprocessor.joblib"], config=kept.config,
            )  # fmt: skip
        return ReleasedModel(
            **common, kind="sklearn", path=str(folder / "model.joblib"), sha256=files["model.joblib"]
        )
    return _from_run(name, workspace, info, common)


def _from_run(name: str, workspace: str | Path, info: VersionRecord, common: dict[str, Any]) -> ReleasedModel:
    """A version registered before the registry kept `source/`: its run's verified exports."""
    run_dir = Path(workspace) / "runs" / str(info.run_id)
    try:
        deployment = _finding(run_dir, "deployment", DeploymentResult)
    except PhaseResultError as exc:
        raise UsageError(f"--from {name}: {exc}") from None
    if deployment is None:
        raise UsageError(f"--from {name}: the run {info.run_id} that released it is not in this workspace")
    model = info.model
    # a scikit-learn model is exported under its own name; a network (trained or fine-tuned) under dnn/
    record = next(
        (
            e
            for e in deployment.exports
            if e.format == "joblib" and Path(e.path).parent.name == model and e.passed
        ),
        None,
    ) or next(
        (
            e
            for e in deployment.exports
            if e.format == "keras" and Path(e.path).parent.name == "dnn" and e.passed
        ),
        None,
    )
    if record is None or record.sha256 is None or not Path(record.path).is_file():
        raise UsageError(f"--from {name}: the exported {model} model of run {info.run_id} is gone")
    if record.format == "joblib":
        return ReleasedModel(**common, kind="sklearn", path=record.path, sha256=record.sha256)
    try:
        prepared = _finding(run_dir, "data-analysis", PreparationFinding)
    except PhaseResultError as exc:
        raise UsageError(f"--from {name}: {exc}") from None
    preprocessor = prepared.files.get("preprocessor") if prepared else None
    if not preprocessor or not prepared or not Path(preprocessor).is_file():
        raise UsageError(f"--from {name}: the preprocessing of run {info.run_id}'s network is gone")
    try:
        trained = _finding(run_dir, "training", TrainingResult) if model == "dnn" else None
    except PhaseResultError as exc:
        raise UsageError(f"--from {name}: {exc}") from None
    dnn = trained.dnn if trained else None
    return ReleasedModel(
        **common, kind="keras", path=record.path, sha256=record.sha256, preprocessor=preprocessor,
        preprocessor_sha256=prepared.preprocessor_sha256, config=dnn.config.model_dump() if dnn else None,
    )  # fmt: skip


_F = TypeVar("_F", DeploymentResult, PreparationFinding, TrainingResult)


def _finding(run_dir: Path, key: str, model: type[_F]) -> _F | None:
    """An earlier run's finding, read through its model (None: the run recorded none)."""
    path = run_dir / "findings" / f"{key}.json"
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text())
    return model.from_finding(recorded.get("value", recorded))


def _keras_shape(path: str) -> tuple[int | None, int | None, tuple[float, float] | None]:
    """(input width, output width, target scale) of a saved Keras network; the scale is the
    (mean, std) of a served regression network's `target_scale` layer, else None."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import ml_expert.tools.training.sequence_models  # noqa: F401  (registers its layer for load_model)
    from ml_expert.tools.training.dnn import target_scale

    model = keras.saving.load_model(path, compile=False)  # the shapes only: no optimizer state
    return model.input_shape[-1], model.output_shape[-1], target_scale(model)


def check_schema(
    name: str,
    workspace: str | Path,
    new: InputSchema,
    n_features_out: int | None = None,
    own_text: bool = False,
) -> ReleasedModel:
    """A usage error naming what differs when the new data cannot feed the released model.

    `n_features_out`: the width the run's preprocessing produces (what a .keras file must take).
    `own_text`: the run reads its text with a vocabulary of its own (VocabularyCheck: too many new
    words for the release's), so the text columns' words and ids are not compared; the release is
    then not a candidate (training.py)."""
    from ml_expert.tools.training.finetune import schema_differences

    released = resolve_release(name, workspace)
    if released.schema_ is None:  # a .keras file: its widths must be the run's
        if new.task not in ("classification", "regression"):
            raise UsageError(f"--from {name}: a .keras file is not fine-tuned for {new.task}")
        try:
            inputs, outputs, scale = _keras_shape(released.path)
        except Exception as exc:  # noqa: BLE001  (any unreadable file is the user's to fix)
            raise UsageError(f"--from {name}: not a Keras model file ({type(exc).__name__}: {exc})") from None
        problems = []
        if inputs != n_features_out:
            problems.append(f"it takes {inputs} inputs, the new data's preprocessing gives {n_features_out}")
        if new.task == "classification":
            classes = len(new.classes or [])
            if outputs != classes:
                problems.append(f"it has {outputs} outputs, the new data has {classes} classes")
        elif outputs != 1:
            problems.append(f"it has {outputs} outputs, a regression target needs 1")
        elif scale is None:
            problems.append(
                "its output scale is unknown: a regression network is fine-tuned through the "
                "'target_scale' layer (z-score to target units) ml-expert serves it with, and it has none"
            )
        if problems:
            raise UsageError(f"--from {name}: the network does not fit the new data: " + "; ".join(problems))
        return released
    differences = schema_differences(released.schema_, new, ignore_text=own_text)
    if differences:
        raise UsageError(
            f"--from {name} ({released.version}): the new data does not match the released model's inputs: "
            + "; ".join(differences)
        )
    if released.kind == "keras" and new.task == "regression":
        try:
            scale = _keras_shape(released.path)[2]
        except Exception as exc:  # noqa: BLE001  (a release that does not load cannot be continued)
            raise UsageError(
                f"--from {name} ({released.version}): its network does not load ({type(exc).__name__}: {exc})"
            ) from None
        if scale is None:
            raise UsageError(
                f"--from {name} ({released.version}) is a regression network without its 'target_scale' "
                "layer: the scale its weights learnt on is unknown; train from scratch instead"
            )
    elif released.kind == "keras" and new.task != "classification":
        raise UsageError(
            f"--from {name} ({released.version}) is a {new.task} network: it is fine-tuned for "
            "classification and regression only; train from scratch instead"
        )
    return released


def candidates(
    ctx: Any, state: dict[str, Any], schema: InputSchema, metric: str
) -> tuple[list[Candidate], FineTuning]:
    """The released model as it is and fine-tuned on the new training split, each scored on the new
    validation split; returns the candidates and the record of what was done."""
    from ml_expert.tools.data.prepare import load_split
    from ml_expert.tools.scoring import predict_scores, score
    from ml_expert.tools.training.finetune import continue_sklearn

    config = RunConfig.of(state)
    data = DataResult.of(state)
    released = check_schema(config.from_ or "production", config.workspace, schema, data.n_features_out)
    vocabulary = data.vocabulary_check  # adopted or extended here: with the run's own, no candidate
    if vocabulary is not None:
        grown = "".join(f" extended by {e.added} words ({e.column!r})" for e in vocabulary.extensions)
        ctx.decide(
            f"fine-tune {released.model} from {released.version} on its vocabulary{grown}: "
            + ", ".join(
                f"{c.column!r} {c.unknown_to_release} of {c.tokens} new training tokens unknown to it "
                f"({c.release_share:.1%}; {c.own_share:.1%} to the new rows' own)"
                for c in vocabulary.columns
            ),
            vocabulary.rule,
        )
    if released.kind == "keras":
        networks, scale = _keras_candidates(ctx, state, released, metric)
        kept = {"target_mean": scale[0], "target_std": scale[1]} if scale else {}
        return networks, FineTuning(
            parent=released.version, parent_model=released.model, parent_run=released.run_id or None,
            # a registry network's fine-tuned copy is a new version of its named model; a file's is not
            model_name=released.model_name, parent_sha256=released.sha256,
            preprocessing="the release's" if released.preprocessor else "this run's", **kept,
            vocabulary_check=vocabulary, vocabulary=vocabulary.reading if vocabulary else None,
        )  # fmt: skip
    train_x, train_y = load_split(data.files, "train", schema, data.file_hashes)
    val_x, val_y = load_split(data.files, "val", schema, data.file_hashes)
    models_dir = ctx.run_dir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    out: list[Candidate] = []
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
            Candidate(
                name=name,
                family="released",
                kind="sklearn",
                val_score=round(score(metric, val_y, predict_scores(pipeline, val_x)), 6),
                train_score=round(score(metric, train_y, predict_scores(pipeline, train_x)), 6),
                fit_seconds=seconds,
                path=str(path),
                sha256=sha256_file(path),
                parent=released.version,
                detail=detail,
            )
        )
    record = FineTuning(
        parent=released.version,
        parent_model=released.model,
        parent_run=released.run_id,
        # a fine-tuned model is a new version of the same named model, not a model of its own
        model_name=released.model_name,
        vocabulary_check=vocabulary,
        vocabulary=vocabulary.reading if vocabulary else None,
    )
    return out, record


def not_fine_tuned(ctx: Any, state: dict[str, Any], vocabulary: VocabularyCheck) -> FineTuning:
    """The record of a `--from` run whose text was read with a vocabulary of its own (too many words
    new to the release's, VocabularyCheck): the release is no candidate, and the model from scratch
    that ships belongs to the release's line, its parent named, like any model of a `--from` run."""
    config = RunConfig.of(state)
    released = resolve_release(config.from_ or "production", config.workspace)
    ctx.decide(
        f"do not fine-tune {released.model} from {released.version}",
        f"its vocabulary misses too many of the new words and is not extended: {vocabulary.rule}",
    )
    return FineTuning(
        parent=released.version, parent_model=released.model, parent_run=released.run_id or None,
        model_name=released.model_name, vocabulary_check=vocabulary, vocabulary="own",
    )  # fmt: skip


def _keras_candidates(
    ctx: Any, state: dict[str, Any], released: ReleasedModel, metric: str
) -> tuple[list[Candidate], tuple[float, float] | None]:
    """A .keras network as it is and continued on the new training split (tools/training/finetune.py:
    a tenth of its learning rate, the pipeline's callbacks, early stopping on held-back training rows),
    each scored on the new validation split. Returns them and, for regression, the (mean, std) the
    fine-tuned copy keeps: the release's.

    Its vocabulary extended (VocabularyCheck.extensions: the run reads the text with the release's
    words and new ones appended), the network gains embedding rows for the new ids first
    (extend_embedding) and only the fine-tuned copy competes: as released it has no row for them."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import ml_expert.tools.training.sequence_models  # noqa: F401  (registers its layer for load_model)
    from ml_expert.tools.data.prepare import load_split
    from ml_expert.tools.data.splits import read_array
    from ml_expert.tools.scoring import score
    from ml_expert.tools.selection.baselines import save_predictions
    from ml_expert.tools.training.dnn import DNNConfig, target_scale
    from ml_expert.tools.training.finetune import FINETUNE_LR_FACTOR, continue_keras
    from ml_expert.tools.training.stopping import stopping_split

    data = DataResult.of(state)
    schema = data.input_schema
    task = schema.task
    models_dir = ctx.run_dir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    train_frame, y_train = load_split(data.files, "train", schema, data.file_hashes)
    val_frame, y_val = load_split(data.files, "val", schema, data.file_hashes)
    inputs: dict[str, str] = {}  # a registry network's candidates name the preprocessing they read
    if released.preprocessor and released.preprocessor_sha256:
        # The weights learned on the release's scaling and encodings: the run's own, fit on other rows,
        # would feed them different numbers. Copied into the run, verified, and shipped with the network.
        verify(released.preprocessor, released.preprocessor_sha256)
        kept = models_dir / "released_preprocessor.joblib"
        shutil.copyfile(released.preprocessor, kept)
        inputs = {"preprocessor": str(kept), "preprocessor_sha256": sha256_file(kept)}
        verify(kept, released.preprocessor_sha256)
        preprocessor = joblib.load(kept)
        x_train = np.asarray(preprocessor.transform(train_frame), dtype="float32")
        x_val = np.asarray(preprocessor.transform(val_frame), dtype="float32")
        ctx.decide(
            f"read the new rows with {released.version}'s preprocessing",
            "the released network's weights learned on features scaled and encoded by it; this run's own, "
            "fit on other rows, would feed them different numbers",
        )
    else:  # a .keras file: read by this run's preprocessing, its widths checked against it
        x_train = read_array(data.files["X_train"], data.file_hashes, "X_train")
        x_val = read_array(data.files["X_val"], data.file_hashes, "X_val")
    planned = SelectionResult.of(state).plan.dnn_config
    config = planned if planned is not None else DNNConfig()
    trained_with = (released.config or {}).get("learning_rate")
    if trained_with:
        config = config.model_copy(update={"learning_rate": float(trained_with)})
    out: list[Candidate] = []
    scale: tuple[float, float] | None = None
    extensions = data.vocabulary_check.extensions if data.vocabulary_check else []
    for name in ("fine_tuned",) if extensions else ("released", "fine_tuned"):
        verify(released.path, released.sha256)
        model = keras.saving.load_model(released.path, compile=False)  # compiled anew to continue
        detail, seconds = f"{released.version} as {'released' if released.run_id else 'given'}", 0.0
        grown = ""
        if extensions:
            model, grown = _extended(ctx, model, released, extensions, RunConfig.of(state).seed)
        if name == "fine_tuned":
            ctx.step(f"fine-tuning {released.version} on the new training rows")
            if task == "regression":
                scale = target_scale(model)  # checked by check_schema: a regression release has one
                if scale is None:
                    raise UsageError(f"--from {released.version}: its network has no 'target_scale' layer")
                ctx.decide(
                    f"fine-tune on the target standardised with {released.version}'s mean {scale[0]:.6g}, "
                    f"std {scale[1]:.6g}",
                    "the released network learnt z-scores of its own training split and its weights only "
                    "mean something on that scale; the new rows' mean "
                    f"{float(np.mean(y_train)):.6g} and std {float(np.std(y_train)):.6g} are not used, and "
                    "the fine-tuned copy is served through the same target_scale layer",
                )
            # early stopping on held-back training rows: the validation rows it competes on stay unseen
            split = stopping_split(y_train, task, RunConfig.of(state).seed)
            ctx.decide(f"fine-tuning stops on {split.watching}", split.rule)
            x_fit, y_fit, x_stop, y_stop = split.arrays(x_train, y_train, x_val, y_val)
            model, result = continue_keras(
                model, task, x_fit, y_fit.astype("float32"), x_stop, y_stop.astype("float32"),
                config, ctx.run_dir / "checkpoints" / "fine-tune",
            )  # fmt: skip
            detail = (
                f"{released.version}{grown} continued {result.epochs_trained} epochs at "
                f"{FINETUNE_LR_FACTOR:g} x "
                f"learning rate {config.learning_rate:g} "
                f"({'the one it was trained with' if trained_with else 'this run planned'}; "
                f"{result.stopped_reason})"
            )
            seconds = result.train_seconds
            ctx.decide(f"fine-tune the network from {released.version}", detail)
        path = models_dir / f"{name}.keras"
        model.save(path)
        val_scores = np.asarray(model.predict(x_val, verbose=0))
        train_scores = np.asarray(model.predict(x_train, verbose=0))
        if task == "regression":  # one column in the target's units, as a network from scratch is scored
            val_scores, train_scores = val_scores.ravel(), train_scores.ravel()
        val_path, val_sha = save_predictions(models_dir / f"{name}.val.npy", val_scores)
        out.append(
            Candidate(
                name=name,
                family="released",
                kind="keras",
                val_score=round(score(metric, y_val, val_scores), 6),
                train_score=round(score(metric, y_train, train_scores), 6),
                fit_seconds=seconds,
                path=str(path),
                sha256=sha256_file(path),
                val_predictions=val_path,
                predictions_sha256={val_path: val_sha},
                parent=released.version,
                detail=detail,
                dnn_config=config.model_dump(),  # its learning rate is what a later --from divides
                **inputs,
            )
        )
    return out, scale


def _extended(
    ctx: Any, model: Any, released: ReleasedModel, extensions: list[VocabularyExtension], seed: int
) -> tuple[Any, str]:
    """The released network with embedding rows for its vocabulary's appended words, and the words
    saying so; a network whose embedding is not its vocabulary's size (+2: padding, unknown) is
    refused, since its ids would not be the vocabulary's."""
    import keras

    from ml_expert.tools.training.finetune import extend_embedding

    if len(extensions) != 1:
        raise UsageError(
            f"--from {released.version}: {len(extensions)} vocabularies to extend; a network has one"
        )
    (extension,) = extensions
    embeddings = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    if len(embeddings) != 1 or embeddings[0].input_dim != extension.release_size + 2:
        raise UsageError(
            f"--from {released.version}: its word embedding does not hold its {extension.release_size}-word "
            "vocabulary (+ padding and unknown); it cannot be extended"
        )
    extended = extend_embedding(model, extension.added, seed)
    grown = f" (vocabulary {extension.release_size} + {extension.added} = {extension.size} words)"
    ctx.decide(
        f"add {extension.added} embedding rows to {released.version}'s network for its extended vocabulary",
        f"{extension.describe(released.version)}; the new rows are drawn by the layer's own initializer "
        f"(seed {seed}), so texts of known words are predicted as before fine-tuning; {released.version} "
        "as released is no candidate here (it has no row for the new ids), and the release gate scores it "
        "on the same test rows read with its own vocabulary",
    )
    return extended, grown


def compete(metric: str, chosen: Candidate, reason: str, released: list[Candidate]) -> tuple[Candidate, str]:
    """The released model (as it is or fine-tuned) ships instead of the model from scratch only when
    it scores strictly better on the new validation rows; ties go to the model from scratch."""
    from ml_expert.tools.scoring import better

    best = released[0]
    for candidate in released[1:]:
        if better(metric, candidate.val_score, best.val_score):
            best = candidate
    if better(metric, best.val_score, chosen.val_score):
        return best, (
            f"{best.name} ({best.detail}) validation {metric} {best.val_score:.4f} beats the "
            f"model from scratch, {chosen.name} {chosen.val_score:.4f}"
        )
    return chosen, (
        f"{reason}; the model from scratch {chosen.val_score:.4f} is at least as good on validation "
        f"as {best.name} {best.val_score:.4f}"
    )


def production_on_test(
    state: dict[str, Any], test_x: Any, test_y: Any, metric: str
) -> ProductionOnTest | None:
    """Current production's score on this run's test rows (read once, with the chosen model's),
    when it takes the same inputs: what the release gate compares a fine-tuned model with."""
    from ml_expert.tools.scoring import predict_scores, score

    try:
        released = resolve_release("production", RunConfig.of(state).workspace)
    except UsageError:
        return None
    from ml_expert.tools.training.finetune import schema_differences

    data = DataResult.of(state)
    schema, vocabulary = data.input_schema, data.vocabulary_check
    if released.schema_ is None:
        return None
    if schema_differences(released.schema_, schema) or released.schema_.vocabularies != schema.vocabularies:
        # the run learnt its own text vocabulary (or extended the release's) from --from this release:
        # its test rows were also read as the release reads them (prepare.py's test_released)
        if (
            vocabulary is None
            or vocabulary.adopted
            or vocabulary.parent != released.version
            or "test_released" not in data.files
            or schema_differences(released.schema_, schema, ignore_text=True)
        ):
            return None
        from ml_expert.tools.data.prepare import load_split

        test_x, _ = load_split(data.files, "test_released", released.schema_, data.file_hashes)
    verify(released.path, released.sha256)
    if released.kind == "sklearn":
        scores = predict_scores(joblib.load(released.path), test_x)
    elif (
        released.preprocessor
        and released.preprocessor_sha256
        and schema.task in ("classification", "regression")
    ):
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        import ml_expert.tools.training.sequence_models  # noqa: F401  (registers its layer for load_model)

        verify(released.preprocessor, released.preprocessor_sha256)
        features = np.asarray(joblib.load(released.preprocessor).transform(test_x), dtype="float32")
        network = keras.saving.load_model(released.path, compile=False)
        scores = np.asarray(network.predict_on_batch(features))
        if schema.task == "regression":  # served through its target_scale layer: the target's units
            scores = scores.ravel()
    else:
        return None
    return ProductionOnTest(version=released.version, test_score=score(metric, test_y, scores))
