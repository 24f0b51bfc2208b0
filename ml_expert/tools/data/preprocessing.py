"""Fit-on-train preprocessing as one scikit-learn ColumnTransformer.

Every statistic (medians, scaler moments, category lists) lives inside the transformer, which
is fit on the training split only and travels with the model into every export.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from onnx import TensorProto
from skl2onnx import get_model_alias, update_registered_converter
from skl2onnx.common.data_types import StringTensorType
from skl2onnx.sklapi import CastTransformer
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from ml_expert.tools.data.privacy import MIN_CATEGORY_COUNT
from ml_expert.tools.data.schema import InputSchema

RARE = "__rare__"
# At most this many one-hot columns per categorical column (plus one for the rare group).
MAX_CATEGORIES = 30


class FrequentCategories(TransformerMixin, BaseEstimator):
    """Keep each column's frequent categories (learned on the training split); map the rest to RARE.

    skl2onnx 1.20 cannot convert OneHotEncoder's `min_frequency`/`max_categories` ("Infrequent
    categories are not implemented"), so the grouping is its own fitted step with its own ONNX
    converter (one ai.onnx.ml LabelEncoder per column). Rare and never-seen values share the
    RARE column; missing ("") stays missing for the imputer that follows.
    """

    def __init__(self, min_count: int = MIN_CATEGORY_COUNT, max_categories: int = MAX_CATEGORIES) -> None:
        self.min_count = min_count
        self.max_categories = max_categories

    def fit(self, X: Any, y: Any = None) -> FrequentCategories:
        values = np.asarray(X, dtype=object)
        self.n_features_in_ = values.shape[1]
        self.categories_: list[list[str]] = []
        for j in range(values.shape[1]):
            counts = Counter(str(v) for v in values[:, j] if v != "")
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            kept = [v for v, n in ranked if n >= self.min_count][: self.max_categories]
            self.categories_.append(sorted(kept))
        return self

    def transform(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype=object)
        out = np.empty(values.shape, dtype=object)
        for j, kept in enumerate(self.categories_):
            known = set(kept)
            out[:, j] = [v if v == "" or v in known else RARE for v in map(str, values[:, j])]
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features if input_features is not None else [], dtype=object)


def _frequent_shape(operator: Any) -> None:
    shape = operator.inputs[0].type.shape
    operator.outputs[0].type = StringTensorType([shape[0], shape[1]])


def _frequent_convert(scope: Any, operator: Any, container: Any) -> None:
    """Per column: Gather it, map known -> itself and "" -> "", anything else -> RARE; Concat."""
    model: FrequentCategories = operator.raw_operator
    source = operator.inputs[0].full_name
    mapped = []
    for j, kept in enumerate(model.categories_):
        index = scope.get_unique_variable_name(f"col{j}_index")
        container.add_initializer(index, TensorProto.INT64, [1], [j])
        column = scope.get_unique_variable_name(f"col{j}")
        container.add_node(
            "Gather", [source, index], column, axis=1, name=scope.get_unique_operator_name("Gather")
        )
        keys = ["", *kept]
        out = scope.get_unique_variable_name(f"col{j}_grouped")
        container.add_node(
            "LabelEncoder",
            column,
            out,
            op_domain="ai.onnx.ml",
            op_version=2,
            keys_strings=keys,
            values_strings=keys,
            default_string=RARE,
            name=scope.get_unique_operator_name("LabelEncoder"),
        )
        mapped.append(out)
    container.add_node(
        "Concat", mapped, operator.outputs[0].full_name, axis=1, name=scope.get_unique_operator_name("Concat")
    )


def _frequent_parse(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
    """Declare a string output, so the imputer after this step is typed as a string imputer."""
    operator = scope.declare_local_operator(get_model_alias(type(model)), model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("grouped", StringTensorType()))
    return operator.outputs


update_registered_converter(
    FrequentCategories,
    "MlExpertFrequentCategories",
    _frequent_shape,
    _frequent_convert,
    parser=_frequent_parse,
)


def build_preprocessor(schema: InputSchema, scale: bool = True, word_ids: bool = True) -> ColumnTransformer:
    """Numeric: cast to float32 first, impute the median, optionally clip to the training range and
    standardise.

    The float32 cast comes first so that scikit-learn sees exactly the values the ONNX export
    sees; without it a tree threshold between two float64 values splits differently in
    float32 and exports disagree with the model. Trees skip the scaler (they do not need it).
    Word ids (a text sequence model's input) come last and pass through as float32; the
    scikit-learn baselines leave them out (`word_ids=False`): an id is a code, not a measurement,
    and a bag of words is the baseline a sequence model has to beat.
    Categorical: group rare values first (so no rare value reaches the imputer's or encoder's
    fitted state), impute the most frequent, one-hot with a bounded number of columns.
    """
    transformers = []
    if schema.numeric:
        steps = [
            ("cast", CastTransformer(dtype=np.float32)),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ]
        if scale:
            # Values beyond the training rows' range are clipped to it first (MinMaxScaler's clip,
            # which skl2onnx exports as Scaler + Clip): a linear model, a kernel or a network
            # extrapolates without bound, and one data-entry error at serving time (a diamond's
            # width of 58.9 mm where training saw at most 10.2) gave a network a price of 148,835
            # against a training maximum of 18,818, alone taking its validation R² from ~0.97 to
            # 0.79. Training rows are inside their own range, so what is learnt is unchanged; trees
            # skip this path and are unaffected either way (no split lies outside the range).
            steps.append(("clip", MinMaxScaler(clip=True)))
            steps.append(("scale", StandardScaler()))
        transformers.append(("num", Pipeline(steps), schema.numeric))
    if schema.categorical:
        categorical = Pipeline(
            [
                ("group", FrequentCategories()),
                ("impute", SimpleImputer(strategy="most_frequent", missing_values="")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("cat", categorical, schema.categorical))
    if word_ids and schema.token_ids:
        # Word ids of a sequence model: last, unscaled (the network slices them off the end).
        ids = Pipeline([("cast", CastTransformer(dtype=np.float32))])
        transformers.append(("ids", ids, schema.token_ids))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def fitted_categories(preprocessor: ColumnTransformer, schema: InputSchema) -> dict[str, list[str]]:
    """Frequent categories the fitted grouping kept, per column key (for the schema and drift checks)."""
    if not schema.categorical:
        return {}
    group = preprocessor.named_transformers_["cat"].named_steps["group"]
    return {key: list(cats) for key, cats in zip(schema.categorical, group.categories_, strict=True)}


def transform(preprocessor: ColumnTransformer, frame: pd.DataFrame):
    """Transformed float32 matrix for Keras."""
    return preprocessor.transform(frame).astype("float32")
