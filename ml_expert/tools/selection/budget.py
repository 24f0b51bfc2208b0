"""Turn a time budget into counts (epochs, trials) by a fixed rule, so a seeded run decides the same
on a fast and a slow machine. Wall-clock time only caps the counts, and a cap that fires is recorded.

The cost model is nominal, not measured: a reference machine doing NOMINAL_FLOPS floating point
operations a second, plus a fixed overhead per training step and per epoch (Keras' own cost, the
callbacks' writes). It is set pessimistic (a busy 2-core machine) so the cap rarely fires.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NOMINAL_FLOPS = 1e10
STEP_OVERHEAD_S = 0.005
EPOCH_OVERHEAD_S = 0.5  # validation pass, callbacks, backup and checkpoint writes
DNN_SHARE = 0.5  # of the whole budget, planned for the neural network
MIN_EPOCHS, MAX_EPOCHS = 5, 300
RESERVE_SHARE = 0.05  # of the budget, kept for saving and scoring after the safety stop
TEXT_EMBEDDING_DIM = 32
TEXT_KERNEL = 5
# The recurrent and attention readers of text and sequences (tools/training/sequence_models.py).
SEQUENCE_LAYERS: tuple[str, ...] = ("conv", "lstm", "transformer")
LSTM_UNITS = 32
ATTENTION_DIM = 32
ATTENTION_HEADS = 2
ATTENTION_FF = 64
# A recurrent step waits for the one before it (no parallelism over the steps), so on the nominal
# machine its multiply-adds count this many times over; a nominal figure, like NOMINAL_FLOPS.
RECURRENT_SEQUENTIAL_FACTOR = 4.0
SIGNAL_PATCH = 4  # steps per Transformer token on a numeric signal


class EpochPlan(BaseModel):
    """The network's epochs at this budget and the figures behind them (the plan keeps it)."""

    model_config = ConfigDict(extra="forbid")

    max_epochs: int
    estimated_epoch_seconds: float
    flops_per_row: float
    share_seconds: float
    rule: str


def dense_flops(n_features: int, units: list[int], n_outputs: int) -> float:
    """Forward multiply-adds x 2 of a dense stack."""
    widths = [n_features, *units, n_outputs]
    return 2.0 * sum(a * b for a, b in zip(widths, widths[1:], strict=False))


def cnn_flops(image_shape: list[int], filters: list[int], units: list[int], n_outputs: int) -> float:
    """Forward FLOPs of the CNN built by tools.training.dnn.build_dnn (3x3 same convs, 2x2 pools)."""
    h, w, c = image_shape
    total = 0.0
    for i, f in enumerate(filters):
        total += 2.0 * h * w * 9 * c * f
        c = f
        if min(h, w) >= 4 and i < len(filters) - 1:
            h, w = h // 2, w // 2
    return total + dense_flops(h * w * c, units, n_outputs)


def conv1d_flops(length: int, filters: list[int], units: list[int], n_outputs: int) -> float:
    """Forward FLOPs of the 1-D CNN built by build_dnn for a numeric sequence (width-5 same convs,
    a 2-step pool between them, global average at the end)."""
    total, channels = 0.0, 1
    for i, f in enumerate(filters):
        total += 2.0 * length * TEXT_KERNEL * channels * f
        channels = f
        if length >= 4 and i < len(filters) - 1:
            length //= 2
    return total + dense_flops(channels, units, n_outputs)


def text_flops(length: int, other_features: int, filters: int, units: list[int], n_outputs: int) -> float:
    """Forward FLOPs of the text CNN built by build_dnn: embedding lookups are free, a width-5 Conv1D
    over `length` positions, then dense layers on the pooled filters and the other features."""
    conv = 2.0 * length * TEXT_KERNEL * TEXT_EMBEDDING_DIM * filters
    return conv + dense_flops(filters + other_features, units, n_outputs)


def lstm_flops(length: int, channels: int) -> float:
    """Nominal forward FLOPs of the LSTM reader: 4 gates of (inputs + state) x units multiply-adds per
    step, times RECURRENT_SEQUENTIAL_FACTOR for the steps that cannot run side by side."""
    return RECURRENT_SEQUENTIAL_FACTOR * 2.0 * length * 4 * (channels + LSTM_UNITS) * LSTM_UNITS


def transformer_flops(length: int, channels: int) -> float:
    """Forward FLOPs of the one-block Transformer encoder: the step projection, Q/K/V/output
    projections, the length x length attention scores and their weighted sum, the feed-forward pair."""
    d = ATTENTION_DIM
    projection = 2.0 * length * channels * d
    qkvo = 4 * 2.0 * length * d * d
    attention = 2 * 2.0 * length * length * d
    feed_forward = 2 * 2.0 * length * d * ATTENTION_FF
    return projection + qkvo + attention + feed_forward


def sequence_reader_flops(layer: str, length: int, channels: int) -> tuple[float, int]:
    """(FLOPs, width of the pooled output) of a recurrent or attention reader."""
    if layer == "lstm":
        return lstm_flops(length, channels), LSTM_UNITS
    if layer == "transformer":
        return transformer_flops(length, channels), ATTENTION_DIM
    raise ValueError(f"no reader cost for {layer!r}")


def text_reader_flops(
    layer: str, length: int, other_features: int, filters: int, units: list[int], n_outputs: int
) -> float:
    """The text network's FLOPs with any reader: the conv one (text_flops) or LSTM / Transformer
    over the word embeddings, then the dense head on the pooled vector and the other features."""
    if layer == "conv":
        return text_flops(length, other_features, filters, units, n_outputs)
    reader, width = sequence_reader_flops(layer, length, TEXT_EMBEDDING_DIM)
    return reader + dense_flops(width + other_features, units, n_outputs)


def signal_reader_flops(
    layer: str, length: int, filters: list[int], units: list[int], n_outputs: int
) -> float:
    """The numeric-sequence network's FLOPs with any reader (one channel per step)."""
    if layer == "conv":
        return conv1d_flops(length, filters, units, n_outputs)
    if layer == "transformer":  # tokens are patches of SIGNAL_PATCH steps
        reader, width = sequence_reader_flops(layer, -(-length // SIGNAL_PATCH), SIGNAL_PATCH)
    else:
        reader, width = sequence_reader_flops(layer, length, 1)
    return reader + dense_flops(width, units, n_outputs)


def plan_epochs(budget: float, rows: int, val_rows: int, batch: int, forward_flops: float) -> EpochPlan:
    """Epochs = the DNN's share of the budget / the nominal cost of one epoch, clamped."""
    steps = -(-rows // batch)
    train_s = rows * forward_flops * 3 / NOMINAL_FLOPS  # forward + backward ≈ 3x forward
    val_s = val_rows * forward_flops / NOMINAL_FLOPS
    epoch_s = EPOCH_OVERHEAD_S + steps * STEP_OVERHEAD_S + train_s + val_s
    share = DNN_SHARE * budget
    epochs = max(MIN_EPOCHS, min(MAX_EPOCHS, int(share / epoch_s)))
    rule = (
        f"max_epochs = clamp({DNN_SHARE:g} x budget {budget:g} s / nominal epoch {epoch_s:.3f} s, "
        f"{MIN_EPOCHS}, {MAX_EPOCHS}) = {epochs}; nominal epoch = {EPOCH_OVERHEAD_S} s + {steps} steps x "
        f"{STEP_OVERHEAD_S} s + {rows}+{val_rows} rows x {forward_flops:.3g} FLOPs at {NOMINAL_FLOPS:.0e}/s"
    )
    return EpochPlan(
        max_epochs=epochs,
        estimated_epoch_seconds=round(epoch_s, 4),
        flops_per_row=forward_flops,
        share_seconds=share,
        rule=rule,
    )


def safety_cap(budget: float, spent: float) -> float:
    """Seconds training may still run before the wall-clock cap fires."""
    return max(1.0, budget * (1 - RESERVE_SHARE) - spent)


FOREST_SHARE = 0.3  # of the budget, planned for the random-forest baseline
FOREST_UNIT_S = 1e-7
"""Nominal seconds per (bootstrap row x log2 rows x features tried per split) of one tree, set
pessimistic: about 1 s a tree for 100k rows x 20 features (classification) on one busy core."""
MIN_TREES = 10
MIN_FOREST_SAMPLES = 2_000


class ForestPlan(BaseModel):
    n_estimators: int
    max_samples: int | None
    estimated_seconds: float
    rule: str


def plan_forest(
    budget: float, rows: int, n_features: int, classification: bool, trees: int, samples: int | None
) -> ForestPlan:
    """Trees (and, when even MIN_TREES would not fit, rows per tree) from the forest's share of the
    budget and a nominal cost per tree, so `--budget 20` on a 3M-row file plans seconds of forest,
    not minutes. `trees` / `samples` are the size the data alone would get (the upper bounds)."""
    import math

    per_tree_rows = min(rows, samples) if samples else rows
    tried = max(1.0, math.sqrt(n_features)) if classification else max(1, n_features)

    def tree_s(n: int) -> float:
        return n * max(1.0, math.log2(max(n, 2))) * tried * FOREST_UNIT_S

    share = FOREST_SHARE * budget
    fit = int(share / max(tree_s(per_tree_rows), 1e-9))
    chosen_samples = samples
    if fit >= MIN_TREES:
        n = min(trees, fit)
    else:
        n = MIN_TREES
        target = share / MIN_TREES  # seconds one tree may take
        rows_per_tree = per_tree_rows
        while rows_per_tree > MIN_FOREST_SAMPLES and tree_s(rows_per_tree) > target:
            rows_per_tree = max(MIN_FOREST_SAMPLES, rows_per_tree // 2)
        chosen_samples = rows_per_tree if rows_per_tree < rows else samples
    used = chosen_samples or rows
    estimate = n * tree_s(min(rows, used))
    rule = (
        f"trees = clamp({FOREST_SHARE:g} x budget {budget:g} s / nominal tree {tree_s(per_tree_rows):.3f} s, "
        f"{MIN_TREES}, {trees}) = {n}; rows per tree {min(rows, used)} "
        f"(nominal tree = rows x log2(rows) x {tried:.1f} features x {FOREST_UNIT_S:g} s)"
    )
    return ForestPlan(
        n_estimators=n, max_samples=chosen_samples, estimated_seconds=round(estimate, 3), rule=rule
    )
