"""Turn a time budget into counts (epochs, trials) by a fixed rule, so a seeded run decides the same
on a fast and a slow machine. Wall-clock time only caps the counts, and a cap that fires is recorded.

The cost model is nominal, not measured: a reference machine doing NOMINAL_FLOPS floating point
operations a second, plus a fixed overhead per training step and per epoch (Keras' own cost, the
callbacks' writes). It is set pessimistic (a busy 2-core machine) so the cap rarely fires.
"""

from __future__ import annotations

from pydantic import BaseModel

NOMINAL_FLOPS = 1e10
STEP_OVERHEAD_S = 0.005
EPOCH_OVERHEAD_S = 0.5  # validation pass, callbacks, backup and checkpoint writes
DNN_SHARE = 0.5  # of the whole budget, planned for the neural network
MIN_EPOCHS, MAX_EPOCHS = 5, 300
RESERVE_SHARE = 0.05  # of the budget, kept for saving and scoring after the safety stop
TEXT_EMBEDDING_DIM = 32
TEXT_KERNEL = 5


class EpochPlan(BaseModel):
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
