"""What the run ran on: package versions and hardware, for the manifest."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = (
    "ml-expert",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "keras",
    "tensorflow-cpu",
    "tensorflow",
    "langgraph",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "tf2onnx",
    "ai-edge-litert",
    "joblib",
    "pydantic",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def available_memory_mb() -> float:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def hardware() -> dict[str, object]:
    """CPU facts without importing TensorFlow (the training phase adds the accelerator it used)."""
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "available_memory_mb": round(available_memory_mb(), 1),
        "platform": platform.platform(),
    }
