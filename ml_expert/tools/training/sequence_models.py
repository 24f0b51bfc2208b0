"""Recurrent (LSTM) and attention (Transformer encoder) layers over a sequence of steps.

The text network's word embeddings and the numeric signal's steps both arrive here as a
[N, steps, channels] tensor; each branch returns one pooled vector per row, joined by build_dnn
to the dense head. Keras 3 layers and `keras.ops` only (no tf.*), so the same model trains under
TensorFlow, JAX and torch. The one custom layer (learned positional embedding) is registered, so
`.keras` and `.h5` files reload once this module is imported (build_dnn and the exporters do).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ml_expert.tools.selection.budget import (
    ATTENTION_DIM,
    ATTENTION_FF,
    ATTENTION_HEADS,
    LSTM_UNITS,
    SEQUENCE_LAYERS,
    SIGNAL_PATCH,
)


@keras.saving.register_keras_serializable(package="ml_expert")
class PositionalEmbedding(keras.layers.Layer):
    """Adds a learned vector per position (steps x dim), so attention knows the order of steps."""

    def __init__(self, length: int, dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.length, self.dim = int(length), int(dim)

    def build(self, input_shape: Any) -> None:
        self.positions = self.add_weight(
            shape=(self.length, self.dim), initializer="random_normal", trainable=True, name="positions"
        )

    def call(self, inputs: Any) -> Any:
        return inputs + ops.cast(ops.expand_dims(self.positions, 0), inputs.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "length": self.length, "dim": self.dim}


def lstm_branch(steps: Any, reg: Any, seed: int) -> Any:
    """LSTM over every step, then the max over steps: robust to where in the sequence (and how much
    trailing padding) the signal sits, unlike the last hidden state alone.

    The LSTM computes in float32 even under mixed precision: JAX's cuDNN RNN has no float16
    kernel ("Unknown output type float16", measured on an H200), and the recurrence gains least."""
    x = keras.layers.LSTM(
        LSTM_UNITS,
        return_sequences=True,
        kernel_regularizer=reg,
        seed=seed,
        dtype="float32",
        name="lstm",
    )(steps)
    return keras.layers.GlobalMaxPooling1D(name="max_over_steps")(x)


def transformer_branch(steps: Any, length: int, reg: Any, dropout: float, seed: int, patch: int = 1) -> Any:
    """One encoder block: projection, positional embedding, multi-head self-attention and a
    feed-forward layer, each with a residual connection and layer normalisation; mean over steps.

    `patch` > 1 (numeric signals): each token is a patch of that many steps, projected by a strided
    convolution (as in PatchTST): one raw value says little on its own, and attention costs a
    patch^2-th of the per-step cost."""
    if patch > 1:
        x = keras.layers.Conv1D(
            ATTENTION_DIM,
            patch,
            strides=patch,
            padding="same",
            kernel_regularizer=reg,
            name="patch_projection",
        )(steps)
        length = -(-length // patch)
    else:
        x = keras.layers.Dense(ATTENTION_DIM, kernel_regularizer=reg, name="step_projection")(steps)
    x = PositionalEmbedding(length, ATTENTION_DIM, name="positions")(x)
    attended = keras.layers.MultiHeadAttention(
        num_heads=ATTENTION_HEADS,
        key_dim=ATTENTION_DIM // ATTENTION_HEADS,
        dropout=dropout,
        seed=seed,
        name="self_attention",
    )(x, x)
    x = keras.layers.LayerNormalization(name="attention_norm")(keras.layers.Add()([x, attended]))
    ff = keras.layers.Dense(ATTENTION_FF, activation="relu", kernel_regularizer=reg, name="ff_in")(x)
    ff = keras.layers.Dense(ATTENTION_DIM, kernel_regularizer=reg, name="ff_out")(ff)
    x = keras.layers.LayerNormalization(name="ff_norm")(keras.layers.Add()([x, ff]))
    return keras.layers.GlobalAveragePooling1D(name="average_over_steps")(x)


def sequence_branch(
    layer: str, steps: Any, length: int, reg: Any, dropout: float, seed: int, signal: bool = False
) -> Any:
    """`signal`: numeric steps (one channel each), read by the Transformer in SIGNAL_PATCH patches."""
    if layer == "lstm":
        return lstm_branch(steps, reg, seed)
    if layer == "transformer":
        return transformer_branch(steps, length, reg, dropout, seed, patch=SIGNAL_PATCH if signal else 1)
    raise ValueError(f"unknown sequence layer {layer!r} (expected one of {SEQUENCE_LAYERS})")
