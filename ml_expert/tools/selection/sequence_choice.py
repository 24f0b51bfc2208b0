"""Which reader a text or sequence network gets: the 1-D convolution, an LSTM or a Transformer encoder.

The rule, on counted figures only (so a seeded run decides the same on any machine):

1. A convolution sees a window of `reach` steps (5 words for text; 13 steps for the two width-5
   layers with a 2-step pool of a numeric sequence), and global pooling finds a pattern wherever it
   sits. When the sequence is at most LONG_FACTOR x reach long the window already spans a large part
   of it, and the cheapest network reads it: the convolution.
2. Longer sequences may carry order over more steps than one window. When the baselines leave at
   least READER_MIN_ROOM of room, a reader that sees every step is planned:
   - a Transformer encoder when there are at least ATTENTION_MIN_ROWS training rows (attention has
     no locality prior and needs data) and at most ATTENTION_MAX_LENGTH tokens (words, or patches of
     SIGNAL_PATCH steps of a signal; its cost grows with their square), and the budget affords it
     MIN_READER_EPOCHS epochs;
   - else an LSTM when the sequence has at most RECURRENT_MAX_LENGTH steps (one recurrent step per
     position; longer ones train slowly and forget) and the budget affords MIN_READER_EPOCHS epochs.
3. Otherwise the convolution.

A forced reader (`network`) is taken as asked and the figures are still recorded.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ml_expert.tools.selection.budget import (
    SIGNAL_PATCH,
    TEXT_KERNEL,
    plan_epochs,
    signal_reader_flops,
    text_reader_flops,
)
from ml_expert.tools.selection.verdicts import Figure

LONG_FACTOR = 4
READER_MIN_ROOM = 0.05
ATTENTION_MIN_ROWS = 10_000
ATTENTION_MAX_LENGTH = 256
RECURRENT_MAX_LENGTH = 1_000
MIN_READER_EPOCHS = 20
NETWORK_CHOICES = ("auto", "conv", "lstm", "transformer")
READER_NAMES = {"conv": "1-D convolution", "lstm": "LSTM", "transformer": "Transformer encoder"}


class ReaderChoice(BaseModel):
    """The reader chosen for a text or sequence column and why (the plan keeps it)."""

    model_config = ConfigDict(extra="forbid")

    layer: str
    forced: bool
    reason: str
    length: int
    rows: int
    budget: float
    room: Figure  # infinite for a loss: written to JSON as null, read back as NaN
    reach: int
    epochs: dict[str, int]  # planned epochs of each reader at this budget
    flops_per_row: dict[str, float]


def conv_reach(kind: str, filters: list[int]) -> int:
    """Steps one output of the convolution sees: the kernel, widened by each later layer after a pool."""
    if kind == "text":
        return TEXT_KERNEL
    reach, stride = TEXT_KERNEL, 1
    for _ in filters[1:]:
        stride *= 2
        reach += (TEXT_KERNEL - 1) * stride
    return reach


def choose_reader(
    kind: str,
    length: int,
    other_features: int,
    rows: int,
    val_rows: int,
    batch: int,
    budget: float,
    room: float,
    filters: list[int],
    units: list[int],
    n_outputs: int,
    forced: str = "auto",
) -> ReaderChoice:
    """`kind` is "text" (word ids) or "sequence" (numeric steps); see the module's rule."""
    flops: dict[str, float] = {}
    for layer in ("conv", "lstm", "transformer"):
        if kind == "text":
            flops[layer] = text_reader_flops(layer, length, other_features, filters[0], units, n_outputs)
        else:
            flops[layer] = signal_reader_flops(layer, length, filters, units, n_outputs)
    epochs = {layer: plan_epochs(budget, rows, val_rows, batch, f).max_epochs for layer, f in flops.items()}
    reach = conv_reach(kind, filters)
    tokens = length if kind == "text" else -(-length // SIGNAL_PATCH)  # a signal's tokens are patches
    figures = (
        f"length {length}, convolution reach {reach}, {rows} training rows, budget {budget:g} s, "
        f"room {room:.4f}; planned epochs conv {epochs['conv']}, LSTM {epochs['lstm']}, "
        f"Transformer {epochs['transformer']}"
    )
    if forced != "auto":
        layer, why = forced, f"asked for (--network {forced})"
    elif length <= LONG_FACTOR * reach:
        layer = "conv"
        why = f"length {length} <= {LONG_FACTOR} x reach {reach}: the window spans the sequence"
    elif room < READER_MIN_ROOM:
        layer = "conv"
        why = f"the baselines leave room {room:.4f} < {READER_MIN_ROOM}: the cheapest network"
    elif (
        rows >= ATTENTION_MIN_ROWS
        and tokens <= ATTENTION_MAX_LENGTH
        and epochs["transformer"] >= MIN_READER_EPOCHS
    ):
        layer = "transformer"
        why = (
            f"length {length} > {LONG_FACTOR} x reach {reach}, rows {rows} >= {ATTENTION_MIN_ROWS}, "
            f"{tokens} tokens <= {ATTENTION_MAX_LENGTH}, "
            f"{epochs['transformer']} >= {MIN_READER_EPOCHS} epochs"
        )
    elif length <= RECURRENT_MAX_LENGTH and epochs["lstm"] >= MIN_READER_EPOCHS:
        layer = "lstm"
        why = (
            f"length {length} > {LONG_FACTOR} x reach {reach}, length <= {RECURRENT_MAX_LENGTH} and "
            f"{epochs['lstm']} >= {MIN_READER_EPOCHS} epochs"
            + (f"; a Transformer needs >= {ATTENTION_MIN_ROWS} rows" if rows < ATTENTION_MIN_ROWS else "")
        )
    else:
        layer = "conv"
        why = (
            f"length {length} > {LONG_FACTOR} x reach {reach}, but the budget affords no reader "
            f"{MIN_READER_EPOCHS} epochs (or the sequence is longer than {RECURRENT_MAX_LENGTH})"
        )
    return ReaderChoice(
        layer=layer,
        forced=forced != "auto",
        reason=f"{READER_NAMES[layer]}: {why} ({figures})",
        length=length,
        rows=rows,
        budget=budget,
        room=round(room, 6),
        reach=reach,
        epochs=epochs,
        flops_per_row=flops,
    )
