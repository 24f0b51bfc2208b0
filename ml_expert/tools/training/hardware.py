"""The hardware check before training, and GPU utilisation sampled while it runs (best effort).

The accelerator query is per backend (each one has its own way to list devices); the training
code itself stays backend-neutral.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

from pydantic import BaseModel, ConfigDict

from ml_expert.tools.environment import available_memory_mb


class GpuUtilisation(BaseModel):
    """The sampler's summary of GPU utilisation while the network trained (UtilisationSampler.summary)."""

    model_config = ConfigDict(extra="forbid")

    samples: int
    interval_seconds: float
    mean_pct: float
    p10_pct: float
    max_pct: int | float  # nvidia-smi reports whole percents
    max_memory_mb: float


class Hardware(BaseModel):
    """The hardware check before training (hardware_check) and, once it trained, the GPU's use."""

    model_config = ConfigDict(extra="forbid")

    backend: str  # the Keras backend
    cpu_count: int | None
    available_memory_mb: float
    gpus: list[str]  # the GPUs the backend sees
    device_used: str  # "CPU" or "GPU (name)"
    nvidia_smi: bool
    gpu_utilisation: GpuUtilisation | None = None  # set after training (None: no samples)


def _gpus(backend: str) -> list[str]:
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices() if d.platform == "gpu"]
    except Exception:  # a broken driver must not stop a CPU run
        return []
    return []


def hardware_check() -> Hardware:
    """CPU cores, memory, GPUs the backend sees, and the device training will use."""
    import keras

    backend = keras.backend.backend()
    gpus = _gpus(backend)
    return Hardware(
        backend=backend,
        cpu_count=os.cpu_count(),
        available_memory_mb=round(available_memory_mb(), 1),
        gpus=gpus,
        device_used=f"GPU ({gpus[0]})" if gpus else "CPU",
        nvidia_smi=shutil.which("nvidia-smi") is not None,
    )


def free_gpu_memory_mb() -> float | None:
    """Free memory of the first GPU (nvidia-smi), or None when it cannot be read."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        return float(out.splitlines()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def parse_smi_line(line: str) -> dict[str, float]:
    """One `utilization.gpu,memory.used` line of `nvidia-smi --format=csv,noheader,nounits`."""
    util, mem = (part.strip() for part in line.split(",")[:2])
    return {"utilisation_pct": float(util), "memory_used_mb": float(mem)}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile by linear interpolation (numpy's default), without importing numpy."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class UtilisationSampler:
    """Samples `nvidia-smi` every `interval` seconds in a thread while training runs; the samples
    (seconds since the start, utilisation, memory) go into training_history.json and the curves."""

    def __init__(self, enabled: bool, interval: float = 0.5) -> None:
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        self.interval = interval
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    [
                        "nvidia-smi",
                        "--query-gpu=utilization.gpu,memory.used",
                        "--format=csv,noheader,nounits",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout
                sample = parse_smi_line(out.splitlines()[0])
                self.samples.append({"t": round(time.perf_counter() - self._started, 2), **sample})
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> UtilisationSampler:
        self._started = time.perf_counter()
        if self.enabled:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=6)

    def summary(self) -> GpuUtilisation | None:
        if not self.samples:
            return None
        utils = [s["utilisation_pct"] for s in self.samples]
        return GpuUtilisation(
            samples=len(utils),
            interval_seconds=self.interval,
            mean_pct=round(sum(utils) / len(utils), 1),
            p10_pct=round(percentile(utils, 10), 1),
            max_pct=max(utils),
            max_memory_mb=max(s["memory_used_mb"] for s in self.samples),
        )
