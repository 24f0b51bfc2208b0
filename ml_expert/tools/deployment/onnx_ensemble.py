"""One ONNX graph for a weighted ensemble (scikit-learn VotingClassifier soft / VotingRegressor).

Each member converts on its own (`sklearn_to_onnx`: its preprocessing, threshold or log-scale
wrapper included) to a graph on the same raw columns; the graphs are brought to one opset, their
values prefixed so none clash, and joined on the shared inputs; a weighted Sum of the members'
``probabilities`` (then ArgMax for ``label``) or ``prediction`` gives the ensemble's outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.deployment.onnx_export import (
    UnsupportedModelError,
    _check_runtime,
    _opset,
    sklearn_to_onnx,
)


def is_voting(model: Any) -> bool:
    return type(model).__name__ in ("VotingClassifier", "VotingRegressor")


def ensemble_to_onnx(ensemble: Any, schema: InputSchema) -> onnx.ModelProto:
    """The fitted ensemble's members in one graph, blended with its normalised weights."""
    from onnx import version_converter

    members = list(ensemble.estimators_)
    weights = np.asarray(ensemble.weights if ensemble.weights is not None else [1.0] * len(members), float)
    if len(weights) != len(members) or weights.sum() <= 0:
        raise UnsupportedModelError(f"ensemble weights {weights.tolist()} do not fit {len(members)} members")
    weights = weights / weights.sum()
    graphs = [sklearn_to_onnx(member, schema) for member in members]
    default = max(_opset(g, "") or 1 for g in graphs)
    domains: dict[str, int] = {}
    for g in graphs:
        for entry in g.opset_import:
            domains[entry.domain] = max(domains.get(entry.domain, 0), entry.version)
    domains[""] = default
    graphs = [
        g if _opset(g, "") == default else version_converter.convert_version(g, default) for g in graphs
    ]

    inputs = list(graphs[0].graph.input)
    names = [i.name for i in inputs]
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    blended: list[str] = []
    task_output = "probabilities" if schema.task == "classification" else "prediction"
    for index, (graph, weight) in enumerate(zip(graphs, weights, strict=True)):
        if [i.name for i in graph.graph.input] != names:
            raise UnsupportedModelError("ensemble members' ONNX graphs take different inputs")
        prefix = f"m{index}_"
        renamed = _prefixed(graph.graph, prefix, keep=set(names))
        nodes += renamed.node
        initializers += renamed.initializer
        source = prefix + task_output
        weight_name = f"{prefix}weight"
        initializers.append(helper.make_tensor(weight_name, TensorProto.FLOAT, [], [np.float32(weight)]))
        if schema.task == "regression":  # [N] or [N, 1] -> [N]
            shape_name = f"{prefix}flat_shape"
            initializers.append(helper.make_tensor(shape_name, TensorProto.INT64, [1], [-1]))
            nodes.append(helper.make_node("Reshape", [source, shape_name], [source + "_flat"]))
            source += "_flat"
        nodes.append(helper.make_node("Mul", [source, weight_name], [source + "_weighted"]))
        blended.append(source + "_weighted")
    if schema.task == "classification":
        n_classes = len(schema.classes or []) or None
        nodes.append(helper.make_node("Sum", blended, ["probabilities"]))
        nodes.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0))
        outputs = [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_classes]),
        ]
    else:
        nodes.append(helper.make_node("Sum", blended, ["prediction"]))
        outputs = [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None])]
    graph = helper.make_graph(nodes, "ml_expert_ensemble", inputs, outputs, initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(domains.items())]
    )
    model.ir_version = max(g.ir_version for g in graphs)
    model.producer_name = "ml-expert"
    onnx.checker.check_model(model)
    _check_runtime(model, schema)
    return model


def _prefixed(graph: onnx.GraphProto, prefix: str, keep: set[str]) -> onnx.GraphProto:
    """A copy whose node names, values and initializers start with `prefix` (inputs in `keep` stay)."""
    out = onnx.GraphProto()
    out.CopyFrom(graph)
    produced = {o for n in out.node for o in n.output} | {i.name for i in out.initializer}
    mapping = {name: prefix + name for name in produced if name and name not in keep}
    for node in out.node:
        node.name = prefix + node.name if node.name else ""
        node.input[:] = [mapping.get(name, name) for name in node.input]
        node.output[:] = [mapping.get(name, name) for name in node.output]
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise UnsupportedModelError("ensemble members with subgraphs (If/Loop) cannot be joined")
    for tensor in out.initializer:
        tensor.name = mapping.get(tensor.name, tensor.name)
    return out
