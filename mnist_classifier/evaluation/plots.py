"""The pictures ``mnist-evaluate`` writes: confusion matrix, worst mistakes, learning curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from ..files import atomic_write

# Figures are built without pyplot: no GUI backend is touched, so this works on a headless
# server, and a notebook shows a returned figure as it is.


def confusion_matrix_figure(matrix: np.ndarray, classes: list[str]) -> Figure:
    size = max(5.0, 0.6 * len(classes))
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=ax, cmap="Blues", colorbar=False,
                                                                 xticks_rotation=45)
    ax.set_title("Confusion matrix (test set)")
    fig.tight_layout()
    return fig


def mistakes_figure(images: np.ndarray, true: list[str], predicted: list[str], probability: np.ndarray,
                    cols: int = 8) -> Figure:
    """A grid of images titled 'true -> predicted (probability)'."""
    rows = max(1, -(-len(images) // cols))
    fig = Figure(figsize=(cols * 1.6, rows * 2.2), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{true[i]} -> {predicted[i]}\n({probability[i]:.1%})", fontsize=9, color="red")
    fig.suptitle("Worst mistakes: true -> predicted (probability)")
    return fig


def learning_curves_figure(history: list[dict]) -> Figure:
    epochs = [h["epoch"] for h in history]
    has_accuracy = bool(history) and "valid_accuracy" in history[0]
    fig = Figure(figsize=(11 if has_accuracy else 6, 4))
    axes = fig.subplots(1, 2 if has_accuracy else 1, squeeze=False)
    loss_ax = axes[0, 0]
    loss_ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    loss_ax.plot(epochs, [h["valid_loss"] for h in history], label="valid loss")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss per epoch")
    loss_ax.legend()
    if has_accuracy:
        acc_ax = axes[0, 1]
        acc_ax.plot(epochs, [100 * h["valid_accuracy"] for h in history], color="tab:green")
        acc_ax.set(xlabel="epoch", ylabel="%", title="Validation accuracy")
    fig.tight_layout()
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write the figure as a PNG, atomically (a full disk leaves the previous file whole)."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    return path
