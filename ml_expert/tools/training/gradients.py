"""The global gradient norm of the training loss, per backend (each has its own autodiff).

Like the accelerator query in hardware.py, this is the one place that names a backend; the model
and the training loop stay backend-neutral. A backend without an implementation returns None,
recorded as "not measured".
"""

from __future__ import annotations

import math

import numpy as np


def global_gradient_norm(model, x: np.ndarray, y: np.ndarray) -> float | None:
    """sqrt(sum of squared gradients) of the compiled loss on (x, y), in inference mode."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=False))
            grads = tape.gradient(loss, model.trainable_variables)
            return _finite(float(tf.linalg.global_norm([g for g in grads if g is not None])))
        if backend == "torch":
            import torch

            model.zero_grad()
            xt, yt = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
            loss = model.compute_loss(x=xt, y=yt, y_pred=model(xt, training=False))
            loss.backward()
            grads = [v.value.grad for v in model.trainable_variables if v.value.grad is not None]
            norm = float(torch.sqrt(sum((g.detach() ** 2).sum() for g in grads)))
            model.zero_grad()
            return _finite(norm)
    except Exception:  # a diagnostic must never stop training
        return None
    return None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else float("nan")
