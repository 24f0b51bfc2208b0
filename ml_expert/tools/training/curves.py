"""Loss and metric curves, train against validation, as one PNG."""

from __future__ import annotations

from pathlib import Path


def plot_curves(
    history: dict[str, list[float]], path: Path, title: str, gpu_samples: list[dict[str, float]] | None = None
) -> None:
    """One panel per metric (train and validation), the diagnostics, and GPU utilisation over time
    when it was sampled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diagnostics = [k for k in ("learning_rate", "grad_norm") if k in history]
    metrics = [k for k in history if not k.startswith("val_") and k not in diagnostics]
    panels = metrics + diagnostics
    columns = len(panels) + (1 if gpu_samples else 0)
    fig, axes = plt.subplots(1, columns, figsize=(4.5 * columns, 3.6), squeeze=False)
    if gpu_samples:
        ax = axes[0][-1]
        ax.plot([s["t"] for s in gpu_samples], [s["utilisation_pct"] for s in gpu_samples], label="GPU")
        ax.set_ylim(0, 100)
        ax.set_xlabel("seconds")
        ax.set_title("GPU utilisation %")
        ax.legend()
    for ax, name in zip(axes[0], panels, strict=False):
        epochs = range(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label=name if name in diagnostics else f"train {name}")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label=f"validation {name}")
        if name in diagnostics:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
