"""Fit-on-train preprocessing as one scikit-learn ColumnTransformer.

Every statistic (medians, scaler moments, category lists) lives inside the transformer, which
is fit on the training split only and travels with the model into every export.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from skl2onnx.sklapi import CastTransformer
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml_expert.tools.data.schema import InputSchema


def build_preprocessor(schema: InputSchema, scale: bool = True) -> ColumnTransformer:
    """Numeric: cast to float32 first, impute the median, optionally standardise.

    The float32 cast comes first so that scikit-learn sees exactly the values the ONNX export
    sees; without it a tree threshold between two float64 values splits differently in
    float32 and exports disagree with the model. Trees skip the scaler (they do not need it).
    """
    transformers = []
    if schema.numeric:
        steps = [
            ("cast", CastTransformer(dtype=np.float32)),
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ]
        if scale:
            steps.append(("scale", StandardScaler()))
        transformers.append(("num", Pipeline(steps), schema.numeric))
    if schema.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent", missing_values="")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("cat", categorical, schema.categorical))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def fitted_categories(preprocessor: ColumnTransformer, schema: InputSchema) -> dict[str, list[str]]:
    """Categories the fitted encoder knows, per column key (for the schema and drift checks)."""
    if not schema.categorical:
        return {}
    encoder = preprocessor.named_transformers_["cat"].named_steps["onehot"]
    return {
        key: [str(v) for v in cats] for key, cats in zip(schema.categorical, encoder.categories_, strict=True)
    }


def transform(preprocessor: ColumnTransformer, frame: pd.DataFrame):
    """Transformed float32 matrix for Keras."""
    return preprocessor.transform(frame).astype("float32")
