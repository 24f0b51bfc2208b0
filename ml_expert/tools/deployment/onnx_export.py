"""ONNX exports whose only inputs are the raw columns of the input schema.

Serving must not need Python preprocessing code: every export carries the fitted
preprocessing inside the graph, takes one [N, 1] tensor per raw column (float32 numeric,
string categorical) and has fixed output names, so one `inference.py` serves every model:

- classification: ``label`` (int64 [N], class index) and ``probabilities`` (float32 [N, K]);
- regression: ``prediction`` (float32 [N] or [N, 1]);
- clustering: ``cluster`` (int64 [N] or [N, 1]) and ``distances`` (float32 [N, k], k-means: the
  distance to each centre) or ``probabilities`` (float32 [N, k], a Gaussian mixture).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, compose, helper

from ml_expert.tools.data.schema import InputSchema

TARGET_OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
"""Opsets asked of skl2onnx and of the Keras exporter; 17 is what both convert to and what
onnxruntime 1.32 runs, and one shared default-domain opset is what `merge_models` needs."""

CLASSIFICATION_OUTPUTS = ("label", "probabilities")
REGRESSION_OUTPUTS = ("prediction",)
KERAS_PREFIX = "keras_"


class UnsupportedModelError(ValueError):
    """The model cannot be exported to ONNX (no converter, or an unexpected graph)."""


def expected_outputs(schema: InputSchema) -> tuple[str, ...]:
    return CLASSIFICATION_OUTPUTS if schema.task == "classification" else REGRESSION_OUTPUTS


def clustering_outputs(estimator: Any) -> tuple[str, str]:
    """A k-means graph's second output is the distance to each centre, a mixture's the membership."""
    return ("cluster", "probabilities" if hasattr(estimator, "predict_proba") else "distances")


def initial_types(schema: InputSchema) -> list[tuple[str, Any]]:
    """One [None, 1] input per raw column, typed as `to_onnx_feed` feeds it."""
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [
        (c.key, FloatTensorType([None, 1]) if c.kind == "numeric" else StringTensorType([None, 1]))
        for c in schema.columns
    ]


# --------------------------------------------------------------------------------------------
# scikit-learn


def register_lightgbm_converters() -> None:
    """Teach skl2onnx the LightGBM estimators (onnxmltools' converter), so a Pipeline ending in one
    converts to one graph with its preprocessing. Idempotent; imported only when exporting."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
        options={"split": None},
    )


def register_catboost_converters() -> None:
    """Teach skl2onnx the CatBoost estimators, so a Pipeline ending in one converts to one graph with
    its preprocessing: CatBoost's own ONNX conversion (`catboost.utils.convert_to_onnx_object`, one
    TreeEnsemble node on the numeric matrix) is written into skl2onnx's graph in place of the model
    step. CatBoost exports numeric features only; here every column reaches it already encoded by the
    pipeline's ColumnTransformer. Idempotent; imported only when exporting."""
    from catboost import CatBoostClassifier, CatBoostRegressor
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        CatBoostClassifier,
        "CatBoostCatBoostClassifier",
        calculate_linear_classifier_output_shapes,
        _convert_catboost,
        parser=_parse_catboost_classifier,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        CatBoostRegressor,
        "CatBoostCatBoostRegressor",
        calculate_linear_regressor_output_shapes,
        _convert_catboost,
    )


def _parse_catboost_classifier(
    scope: Any, model: Any, inputs: list[Any], custom_parsers: Any = None
) -> list[Any]:
    """A label and a probability tensor (CatBoostClassifier is no scikit-learn ClassifierMixin, so
    skl2onnx's own parser would declare one output). Only the tensor form: no ZipMap."""
    from skl2onnx.common.data_types import Int64TensorType, guess_tensor_type

    options = scope.get_options(model, {"zipmap": True})
    if options["zipmap"] is not False:
        raise UnsupportedModelError("a CatBoost classifier is exported with zipmap=False only")
    operator = scope.declare_local_operator("CatBoostCatBoostClassifier", model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    operator.outputs.append(scope.declare_local_variable("probabilities", guess_tensor_type(inputs[0].type)))
    return list(operator.outputs)


def _convert_catboost(scope: Any, operator: Any, container: Any) -> None:
    from catboost.utils import convert_to_onnx_object
    from onnx.helper import get_attribute_value

    exported = convert_to_onnx_object(operator.raw_operator)
    opsets = {d.domain: d.version for d in exported.opset_import}
    trees = [n for n in exported.graph.node if n.op_type.startswith("TreeEnsemble")]
    if len(trees) != 1 or exported.graph.initializer:
        raise UnsupportedModelError(
            f"CatBoost's ONNX graph has {len(trees)} tree ensembles and "
            f"{len(exported.graph.initializer)} initializers; expected one ensemble and none"
        )
    node = trees[0]  # classification: TreeEnsembleClassifier -> label, probability tensor (ZipMap dropped)
    outputs = [o.full_name for o in operator.outputs]
    if len(node.output) != len(outputs):
        raise UnsupportedModelError(
            f"CatBoost's {node.op_type} has {len(node.output)} outputs, not {len(outputs)}"
        )
    container.add_node(
        node.op_type,
        [operator.inputs[0].full_name],
        outputs,
        op_domain=node.domain,
        op_version=opsets.get(node.domain),
        name=scope.get_unique_operator_name("CatBoost"),
        **{a.name: get_attribute_value(a) for a in node.attribute},
    )


def _is_catboost(estimator: Any) -> bool:
    return type(estimator).__module__.split(".")[0] == "catboost"


def _is_lightgbm(estimator: Any) -> bool:
    return type(estimator).__module__.split(".")[0] == "lightgbm"


def sklearn_to_onnx(pipeline: Any, schema: InputSchema) -> onnx.ModelProto:
    """Convert a fitted `Pipeline([pre, cast, model])` to one ONNX graph on the raw columns.

    skl2onnx has no converter for two wrappers the model search ships, so their arithmetic is
    written into the graph here: a `FixedThresholdClassifier` (binary decision threshold) becomes
    ``label = P(class 1) >= t``, and a `TransformedTargetRegressor(log1p, expm1)` becomes
    ``prediction = exp(inner prediction) - 1``. The export's parity check compares both with
    scikit-learn's own predict.
    """
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.pipeline import Pipeline

    if isinstance(pipeline, FixedThresholdClassifier):
        model = sklearn_to_onnx(pipeline.estimator_, schema)
        _cut_at_threshold(model, float(pipeline.threshold))
        _check_runtime(model, schema)
        return model
    last = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else None
    if isinstance(last, TransformedTargetRegressor):
        if last.func is not np.log1p or last.inverse_func is not np.expm1:
            raise UnsupportedModelError("only a log1p/expm1 TransformedTargetRegressor can be exported")
        model = sklearn_to_onnx(Pipeline(pipeline.steps[:-1] + [("model", last.regressor_)]), schema)
        _expm1_output(model)
        _check_runtime(model, schema)
        return model
    return _convert_pipeline(pipeline, schema)


def _cut_at_threshold(model: onnx.ModelProto, threshold: float) -> None:
    """Replace the argmax ``label`` by ``P(class 1) >= threshold`` (float32, as the tuner chose it)."""
    graph = model.graph
    _rename_values(graph, {"label": "label_argmax"})
    # operators of opset 11 (what skl2onnx may write): p >= t as Not(p < t)
    graph.initializer.extend(
        [
            helper.make_tensor("threshold_index", TensorProto.INT64, [1], [1]),
            helper.make_tensor("flat_shape", TensorProto.INT64, [1], [-1]),
            helper.make_tensor("decision_threshold", TensorProto.FLOAT, [], [np.float32(threshold)]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Gather", ["probabilities", "threshold_index"], ["p_positive"], axis=1),
            helper.make_node("Reshape", ["p_positive", "flat_shape"], ["p_positive_1d"]),
            helper.make_node("Less", ["p_positive_1d", "decision_threshold"], ["is_negative"]),
            helper.make_node("Not", ["is_negative"], ["is_positive"]),
            helper.make_node("Cast", ["is_positive"], ["label"], to=TensorProto.INT64),
        ]
    )
    for out in graph.output:
        if out.name == "label_argmax":
            out.CopyFrom(helper.make_tensor_value_info("label", TensorProto.INT64, [None]))


def _expm1_output(model: onnx.ModelProto) -> None:
    """``prediction = exp(log-scale prediction) - 1`` (the regressor learnt log1p of the target)."""
    graph = model.graph
    _rename_values(graph, {"prediction": "prediction_log1p"})
    graph.initializer.append(helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]))
    graph.node.extend(
        [
            helper.make_node("Exp", ["prediction_log1p"], ["prediction_exp"]),
            helper.make_node("Sub", ["prediction_exp", "one"], ["prediction"]),
        ]
    )
    for out in graph.output:
        if out.name == "prediction_log1p":
            out.name = "prediction"


def _convert_pipeline(pipeline: Any, schema: InputSchema) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from sklearn.base import is_classifier

    from ml_expert.tools.deployment.onnx_ensemble import ensemble_to_onnx, is_voting

    if is_voting(pipeline):  # a weighted ensemble of pipelines: the members' graphs, joined
        return ensemble_to_onnx(pipeline, schema)
    estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    name = type(estimator).__name__
    if name.startswith("Dummy"):
        raise UnsupportedModelError(
            f"{name} cannot be exported to ONNX (skl2onnx has no converter for it); a dummy "
            "baseline is a yardstick and is never shipped"
        )
    if _is_lightgbm(estimator):
        register_lightgbm_converters()
    elif _is_catboost(estimator):
        register_catboost_converters()
    options = {id(estimator): {"zipmap": False}} if is_classifier(estimator) else None
    try:
        with warnings.catch_warnings():
            # skl2onnx 1.20 writes tree missing-value flags as bools; protobuf 6 accepts them
            warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean.*")
            model = convert_sklearn(
                pipeline, initial_types=initial_types(schema), target_opset=TARGET_OPSET, options=options
            )
    except Exception as exc:  # skl2onnx raises many unrelated types for "no converter"
        raise UnsupportedModelError(f"skl2onnx could not convert {name}: {exc}") from exc
    if name.startswith("HistGradientBoosting"):
        _floor_hgb_thresholds(model, estimator)
    elif _is_lightgbm(estimator):
        _floor_lightgbm_thresholds(model, estimator)
    outputs = [o.name for o in model.graph.output]
    wanted = clustering_outputs(estimator) if schema.task == "clustering" else expected_outputs(schema)
    if len(outputs) != len(wanted):
        raise UnsupportedModelError(f"{name}: ONNX outputs {outputs}, expected {len(wanted)} ({wanted})")
    _rename_values(model.graph, dict(zip(outputs, wanted, strict=True)))
    if schema.task in ("classification", "clustering"):
        label_type = model.graph.output[0].type.tensor_type.elem_type
        if label_type != TensorProto.INT64:
            raise UnsupportedModelError(
                f"{name}: the ONNX label is {TensorProto.DataType.Name(label_type)}, not INT64; "
                "fit classifiers on class indices 0..K-1"
            )
    _check_runtime(model, schema, wanted)
    return model


def _floor_hgb_thresholds(model: onnx.ModelProto, estimator: Any) -> None:
    """Make float32 tree thresholds decide exactly as scikit-learn's float64 ones.

    HistGradientBoosting compares float64(x) <= t with a float64 t; skl2onnx (1.20) rounds t
    to the *nearest* float32, so an input equal to a rounded-up t goes left in ONNX and right
    in scikit-learn. For a float32 x, x <= t exactly when x <= the largest float32 not above
    t, which is what this writes back (matched to the trees by tree and node id).
    """
    thresholds: dict[tuple[int, int], float] = {}
    per_iteration = int(getattr(estimator, "n_trees_per_iteration_", 1))
    for iteration, trees in enumerate(estimator._predictors):
        for k, tree in enumerate(trees):
            tree_id = iteration if len(trees) == 1 else iteration * per_iteration + k
            for node_id, node in enumerate(tree.nodes):
                if not node["is_leaf"]:
                    thresholds[(tree_id, node_id)] = float(node["num_threshold"])
    if not _floor_thresholds(model, lambda tree, node, _: thresholds.get((tree, node))):
        warnings.warn(
            "HistGradientBoosting ONNX tree layout not recognised; thresholds left as "
            "skl2onnx wrote them (the parity check still guards the export)",
            stacklevel=3,
        )


def _floor_lightgbm_thresholds(model: onnx.ModelProto, estimator: Any) -> None:
    """The same float32 floor for LightGBM, which also splits on `x <= t` with a float64 t.

    onnxmltools numbers LightGBM's trees in dump order but its nodes in its own order, so each
    ONNX threshold is matched to the float64 threshold of the same tree that rounds to it; one
    that matches none (or two that floor differently) is left as written, and the parity check
    still guards the export.
    """
    per_tree: list[dict[float, set[float]]] = []
    for tree in estimator.booster_.dump_model()["tree_info"]:
        rounded: dict[float, set[float]] = {}
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "threshold" in node and node.get("decision_type") == "<=":
                value = float(node["threshold"])
                rounded.setdefault(float(np.float32(value)), set()).add(_float32_floor(value))
                stack += [node["left_child"], node["right_child"]]
        per_tree.append(rounded)

    def lookup(tree_id: int, _node: int, value: float) -> float | None:
        floors = per_tree[tree_id].get(value) if tree_id < len(per_tree) else None
        return next(iter(floors)) if floors and len(floors) == 1 else None

    _floor_thresholds(model, lookup, partial=True)


def _floor_thresholds(
    model: onnx.ModelProto, lookup: Callable[[int, int, float], float | None], partial: bool = False
) -> int:
    """Write `_float32_floor` thresholds into the TreeEnsemble nodes `lookup` recognises.

    lookup(tree id, node id, ONNX threshold) gives the model's float64 threshold, or None. A node
    (one model of an ensemble graph) is rewritten only when every one of its thresholds is found
    and rounds to what is written there, unless `partial`; returns how many nodes were rewritten.
    """
    rewritten = 0
    for node in model.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        if "nodes_values" not in attrs:  # double thresholds (nodes_values_as_tensor) are exact
            continue
        values = list(attrs["nodes_values"].floats)
        keys = zip(attrs["nodes_treeids"].ints, attrs["nodes_nodeids"].ints, strict=True)
        new_values = list(values)
        complete = True
        for i, ((tree_id, node_id), mode) in enumerate(zip(keys, attrs["nodes_modes"].strings, strict=True)):
            if mode != b"BRANCH_LEQ":
                continue
            threshold = lookup(tree_id, node_id, values[i])
            written = (values[i], _float32_floor(threshold)) if threshold is not None else ()
            if threshold is None or float(np.float32(threshold)) not in written:
                complete = False
                continue
            new_values[i] = _float32_floor(threshold)
        if complete or partial:
            attrs["nodes_values"].CopyFrom(helper.make_attribute("nodes_values", new_values))
            rewritten += 1
    return rewritten


def _float32_floor(value: float) -> float:
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


# --------------------------------------------------------------------------------------------
# Keras


def keras_to_onnx(model: Any, preprocessor: Any, schema: InputSchema) -> onnx.ModelProto:
    """Compose the fitted preprocessor (skl2onnx) and the Keras model (tf2onnx) in one graph.

    Keras 3.15 `model.export(format="onnx")` (tf2onnx under the hood, TF backend) gives a
    graph on the float32 feature matrix; it is prefixed, joined to the preprocessor's output
    with `onnx.compose.merge_models`, and given the fixed output names (an ArgMax makes
    ``label`` from the softmax in classification).
    """
    from skl2onnx import convert_sklearn

    keras_model = _keras_graph(model)
    default_opset = _opset(keras_model, "") or TARGET_OPSET[""]
    pre_model = convert_sklearn(
        preprocessor,
        initial_types=initial_types(schema),
        target_opset={"": default_opset, "ai.onnx.ml": TARGET_OPSET["ai.onnx.ml"]},
    )
    if len(pre_model.graph.output) != 1:
        raise UnsupportedModelError("the preprocessor's ONNX graph must have exactly one output")
    pre_out = pre_model.graph.output[0].name
    if pre_model.graph.output[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        cast_name = pre_out + "_float32"
        pre_model.graph.node.append(helper.make_node("Cast", [pre_out], [cast_name], to=TensorProto.FLOAT))
        del pre_model.graph.output[:]
        pre_model.graph.output.append(helper.make_tensor_value_info(cast_name, TensorProto.FLOAT, None))
        pre_out = cast_name

    keras_model = compose.add_prefix(keras_model, KERAS_PREFIX)
    keras_in = _graph_inputs(keras_model)[0]
    keras_out = keras_model.graph.output[0]
    pre_model, keras_model = _align(pre_model, keras_model)
    merged = compose.merge_models(pre_model, keras_model, io_map=[(pre_out, keras_in)])

    graph = merged.graph
    out_name, out_type = keras_out.name, keras_out.type.tensor_type.elem_type
    if out_type != TensorProto.FLOAT:
        graph.node.append(helper.make_node("Cast", [out_name], [out_name + "_f32"], to=TensorProto.FLOAT))
        out_name += "_f32"
    dims = [d.dim_value if d.HasField("dim_value") else None for d in keras_out.type.tensor_type.shape.dim]
    del graph.output[:]
    if schema.task == "classification":
        n_classes = len(schema.classes or [])
        if len(dims) != 2 or (dims[1] is not None and n_classes and dims[1] != n_classes):
            raise UnsupportedModelError(
                f"the Keras classifier's output shape is {dims}; expected [N, {n_classes}] "
                "(a final Dense(K, softmax), K=2 for binary)"
            )
        graph.node.append(helper.make_node("Identity", [out_name], ["probabilities"]))
        graph.node.append(helper.make_node("ArgMax", [out_name], ["label"], axis=1, keepdims=0))
        graph.output.extend(
            [
                helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, dims[1]]),
            ]
        )
    else:
        graph.node.append(helper.make_node("Identity", [out_name], ["prediction"]))
        graph.output.append(helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None, *dims[1:]]))
    merged.producer_name = "ml-expert"
    onnx.checker.check_model(merged, full_check=True)
    _check_runtime(merged, schema)
    return merged


def _keras_graph(model: Any) -> onnx.ModelProto:
    """Keras's own ONNX export, checked to take only the feature matrix.

    With an adapted Normalization layer Keras 3.15 leaves mean/variance as extra graph inputs
    (STACK.md); the pipeline's Keras models have none, so extra inputs are refused here.
    """
    with tempfile.TemporaryDirectory(prefix="ml-expert-onnx-") as tmp:
        path = Path(tmp) / "keras.onnx"
        model.export(str(path), format="onnx", opset_version=TARGET_OPSET[""], verbose=False)
        keras_model = onnx.load(str(path))
    inputs = _graph_inputs(keras_model)
    if len(inputs) != 1 or len(keras_model.graph.output) != 1:
        raise UnsupportedModelError(
            f"the Keras ONNX export has inputs {inputs} and {len(keras_model.graph.output)} outputs; "
            "expected one feature-matrix input and one output (an adapted Normalization layer "
            "adds its statistics as inputs: see STACK.md)"
        )
    return keras_model


def _graph_inputs(model: onnx.ModelProto) -> list[str]:
    initializers = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def _opset(model: onnx.ModelProto, domain: str) -> int | None:
    for entry in model.opset_import:
        if entry.domain == domain:
            return entry.version
    return None


def _align(first: onnx.ModelProto, second: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """Give both models one IR version and one opset per domain, as merge_models requires.

    skl2onnx declares the lowest default-domain opset its ops need (11 for a numeric-only
    preprocessor), so the older side is upgraded with onnx's version converter. For another
    domain used by only one model (tf2onnx declares ai.onnx.ml without using it) the unused
    side's declaration is rewritten; any other clash is refused.
    """
    from onnx import version_converter

    default_a, default_b = _opset(first, ""), _opset(second, "")
    if default_a is not None and default_b is not None and default_a != default_b:
        if default_a < default_b:
            first = version_converter.convert_version(first, default_b)
        else:
            second = version_converter.convert_version(second, default_a)
    ir_version = max(first.ir_version, second.ir_version)
    first.ir_version = second.ir_version = ir_version
    for entry_a in first.opset_import:
        for entry_b in second.opset_import:
            if entry_a.domain != entry_b.domain or entry_a.version == entry_b.version:
                continue
            used_a = any(n.domain == entry_a.domain for n in first.graph.node)
            used_b = any(n.domain == entry_b.domain for n in second.graph.node)
            if not used_b:
                entry_b.version = entry_a.version
            elif not used_a:
                entry_a.version = entry_b.version
            else:
                raise UnsupportedModelError(
                    f"opset clash in domain {entry_a.domain!r}: {entry_a.version} vs {entry_b.version}"
                )
    return first, second


# --------------------------------------------------------------------------------------------
# shared


def _rename_values(graph: onnx.GraphProto, mapping: dict[str, str]) -> None:
    """Rename graph values (node inputs/outputs and graph outputs) in place."""
    mapping = {old: new for old, new in mapping.items() if old != new}
    if not mapping:
        return
    taken = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    clash = (set(mapping.values()) & taken) - set(mapping)
    if clash:
        raise UnsupportedModelError(f"cannot rename outputs: {sorted(clash)} already used in the graph")
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]
    for value in graph.output:
        if value.name in mapping:
            value.name = mapping[value.name]


def _check_runtime(
    model: onnx.ModelProto, schema: InputSchema, wanted: tuple[str, ...] | None = None
) -> None:
    """Open the graph in onnxruntime: the inputs must be exactly the raw columns."""
    import onnxruntime as ort

    wanted = wanted or expected_outputs(schema)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if sorted(inputs) != sorted(schema.keys):
        raise UnsupportedModelError(f"ONNX inputs {inputs} are not the schema's column keys {schema.keys}")
    if outputs != list(wanted):
        raise UnsupportedModelError(f"ONNX outputs {outputs}, expected {list(wanted)}")
