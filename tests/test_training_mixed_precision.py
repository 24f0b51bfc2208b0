"""Mixed precision (the GPU path) trains in float16 but ships a float32 copy with the same weights."""

from __future__ import annotations

import numpy as np

from ml_expert.tools.training.dnn import DNNConfig, build_dnn, float32_copy


def test_float32_copy_of_a_mixed_precision_network() -> None:
    import keras

    config = DNNConfig(hidden_units=[16], mixed_precision=True)
    model = build_dnn(10, "classification", 3, config, seed=0)
    assert model.layers[1].dtype_policy.name == "mixed_float16"
    assert model.layers[-1].dtype_policy.name == "float32"  # softmax in float32
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    served = float32_copy(model, 10, "classification", 3, config, seed=0)
    assert {layer.dtype_policy.name for layer in served.layers} == {"float32"}
    x = np.random.default_rng(0).normal(size=(64, 10)).astype("float32")
    reference = np.asarray(model.predict_on_batch(x))
    np.testing.assert_allclose(np.asarray(served.predict_on_batch(x)), reference, atol=5e-3)
    plain = DNNConfig(hidden_units=[16])
    same = build_dnn(10, "classification", 3, plain, seed=0)
    assert float32_copy(same, 10, "classification", 3, plain, seed=0) is same
