"""How the network keeps its device busy: steps per host call, XLA, where the data lives, and on a
GPU the batch and the learning rate, each chosen by a stated rule from the model's size and the
device, never from a timing, so the same run trains the same steps on any machine.

Small networks take well under a millisecond a step on a GPU, so a step per Python round-trip
leaves the device idle most of the time (7 % measured on an H200 for the tabular network).
`steps_per_execution` runs many steps per call; it changes speed, not arithmetic (the same
batches in the same order), which is why it is also used on the CPU. Batch and learning rate
change only on a GPU, where a bigger batch is what fills the device.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

# A nominal, conservative rate of each device for a small network's kernels (not its peak).
NOMINAL_DEVICE_FLOPS = {"cpu": 1e10, "gpu": 1e13}
HOST_CALL_SECONDS = 0.002  # Python, dispatch and the callbacks' per-call cost of one call
HOST_SHARE = 0.1  # the most of an execution the host's call may cost
MAX_STEPS_PER_EXECUTION = 256  # batch-level callbacks (the divergence guard) still run this often
MIN_STEPS_PER_EPOCH = 16  # a GPU batch never grows so big an epoch has fewer steps
GPU_MAX_BATCH = 16384
GPU_MEMORY_SHARE = 0.5  # of the free GPU memory, for the activations of one batch
# Bytes a training row needs on the device per forward FLOP: each multiply-add reads at most one
# activation (float32, 4 bytes) and the backward pass keeps one gradient per activation. Used only
# when the built model's own activations are not known (a bound far above them for convolutions,
# whose FLOPs per output are kernel x channels: 256 was the MNIST CNN's batch by it on an H200).
ACTIVATION_BYTES_PER_FLOP = 4.0
# Bytes per activation element of the built model: the float32 value kept for the backward pass,
# its gradient and one temporary of the same size.
BYTES_PER_ACTIVATION = 12.0
DEVICE_DATA_SHARE = 0.25  # of the free GPU memory, for the whole training and validation arrays
MAX_LR_FACTOR = 8.0


class ExecutionPlan(BaseModel):
    """What `compile` and `fit` get, with the reason for each setting."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["cpu", "gpu"]
    backend: str
    steps_per_execution: int
    jit_compile: bool | Literal["auto"]
    batch_size: int
    learning_rate: float
    data_on_device: bool
    estimated_step_seconds: float
    rules: list[str]


def estimated_step_seconds(forward_flops: float, batch: int, device: str) -> float:
    """Forward + backward ≈ 3 x the forward FLOPs of every row of the batch, at the nominal rate."""
    return 3.0 * forward_flops * batch / NOMINAL_DEVICE_FLOPS[device]


def steps_per_execution(forward_flops: float, batch: int, rows: int, device: str) -> tuple[int, str]:
    """Enough steps per call that the host's call costs at most HOST_SHARE of the execution."""
    step = estimated_step_seconds(forward_flops, batch, device)
    steps_per_epoch = max(1, -(-rows // batch))
    wanted = math.ceil(HOST_CALL_SECONDS / (HOST_SHARE * max(step, 1e-12)))
    chosen = max(1, min(wanted, steps_per_epoch, MAX_STEPS_PER_EXECUTION))
    rule = (
        f"steps_per_execution = clamp(ceil({HOST_CALL_SECONDS} s host call / ({HOST_SHARE:g} x "
        f"{step:.3g} s estimated step)), 1, min({steps_per_epoch} steps per epoch, "
        f"{MAX_STEPS_PER_EXECUTION})) = {chosen}"
    )
    return chosen, rule


def activation_elements(model: Any) -> int:
    """Elements of every layer's output for one row of a built Keras model: what a training row
    keeps on the device through the forward and backward pass."""
    total = 0
    for layer in getattr(model, "layers", []):
        try:
            outputs = layer.output
        except (AttributeError, ValueError):  # a layer never called on a symbolic input
            continue
        for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            shape = getattr(output, "shape", None)
            if shape is not None and all(d is not None for d in shape[1:]):
                total += math.prod(int(d) for d in shape[1:])
    return total


def gpu_batch(
    base_batch: int,
    rows: int,
    forward_flops: float,
    free_memory_mb: float | None,
    activations: int | None = None,
) -> tuple[int, str]:
    """The largest power of two that fits the memory share, keeps MIN_STEPS_PER_EPOCH steps, and is
    at least the CPU batch. A row's memory comes from the built model's activations when known,
    else from its FLOPs (a loose upper bound)."""
    if activations:
        row_bytes = BYTES_PER_ACTIVATION * activations
        per_row = f"{BYTES_PER_ACTIVATION:g} B x {activations} activations a row"
    else:
        row_bytes = ACTIVATION_BYTES_PER_FLOP * max(forward_flops, 1.0)
        per_row = f"{ACTIVATION_BYTES_PER_FLOP:g} B x {forward_flops:.3g} FLOPs a row"
    memory_rows = (
        GPU_MEMORY_SHARE * free_memory_mb * 2**20 / row_bytes if free_memory_mb else float(GPU_MAX_BATCH)
    )
    limit = min(memory_rows, rows / MIN_STEPS_PER_EPOCH, GPU_MAX_BATCH)
    batch = max(base_batch, 2 ** int(math.floor(math.log2(max(limit, 1)))))
    memory = f"{free_memory_mb:.0f} MB free" if free_memory_mb else "free memory unknown"
    rule = (
        f"batch = largest power of 2 <= min({GPU_MEMORY_SHARE:g} x {memory} / "
        f"({per_row}), {rows} rows / "
        f"{MIN_STEPS_PER_EPOCH} steps, {GPU_MAX_BATCH}), at least {base_batch} = {batch}"
    )
    return batch, rule


def scaled_learning_rate(base_lr: float, base_batch: int, batch: int) -> tuple[float, str]:
    """Square-root scaling for Adam (the update's noise scale stays the same), capped."""
    factor = min(math.sqrt(batch / base_batch), MAX_LR_FACTOR)
    rule = (
        f"learning rate = {base_lr:g} x min(sqrt({batch} / {base_batch}), {MAX_LR_FACTOR:g}) "
        f"= {base_lr * factor:.3g} (square-root rule for Adam)"
    )
    return base_lr * factor, rule


def plan_execution(
    *,
    backend: str,
    gpu: bool,
    rows: int,
    data_bytes: int,
    forward_flops: float,
    batch_size: int,
    learning_rate: float,
    free_gpu_memory_mb: float | None = None,
    class_weighted: bool = False,
    activations: int | None = None,
) -> ExecutionPlan:
    """The settings for one training run; on the CPU only steps_per_execution differs from Keras'
    defaults, so CPU results are those of a plain `fit`."""
    device: Literal["cpu", "gpu"] = "gpu" if gpu else "cpu"
    rules: list[str] = []
    batch, lr = batch_size, learning_rate
    if gpu:
        batch, rule = gpu_batch(batch_size, rows, forward_flops, free_gpu_memory_mb, activations)
        rules.append(rule)
        if batch != batch_size:
            lr, rule = scaled_learning_rate(learning_rate, batch_size, batch)
            rules.append(rule)
    spe, rule = steps_per_execution(forward_flops, batch, rows, device)
    rules.append(rule)
    # XLA: Keras' "auto" is already on for JAX and off for TensorFlow on a CPU; on a GPU it is asked
    # for under TensorFlow and JAX (a compile failure falls back, see tools/training/dnn.py). torch's
    # compiler costs minutes of compilation for seconds of training: left off.
    jit: bool | Literal["auto"] = "auto"
    if gpu and backend in ("tensorflow", "jax"):
        jit = True
        rules.append(f"jit_compile on: XLA fuses the small kernels of each step ({backend} on a GPU)")
    elif backend == "torch":
        jit = False
        rules.append("jit_compile off: torch.compile costs more to compile than these networks train")
    # Data on the device: JAX and torch otherwise copy every batch from host memory in the step;
    # TensorFlow's own input pipeline (tf.data with prefetch) already overlaps the copy.
    # Keras turns class weights into per-row weights with NumPy, from host arrays only.
    on_device = bool(
        gpu
        and not class_weighted
        and backend in ("jax", "torch")
        and free_gpu_memory_mb
        and data_bytes <= DEVICE_DATA_SHARE * free_gpu_memory_mb * 2**20
    )
    if gpu:
        rules.append(
            f"data {'placed on the GPU once' if on_device else 'streamed from host memory'}: "
            f"{data_bytes / 2**20:.0f} MB against {DEVICE_DATA_SHARE:g} x the free GPU memory"
            + ("; class weights need host arrays" if class_weighted else "")
            + ("" if backend != "tensorflow" else "; tf.data prefetches the next batches")
        )
    return ExecutionPlan(
        device=device,
        backend=backend,
        steps_per_execution=spe,
        jit_compile=jit,
        batch_size=batch,
        learning_rate=lr,
        data_on_device=on_device,
        estimated_step_seconds=estimated_step_seconds(forward_flops, batch, device),
        rules=rules,
    )
