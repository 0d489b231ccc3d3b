"""The pictures ``mnist-evaluate`` writes: confusion matrix, worst mistakes, learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no screen is needed, and none is opened
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def confusion_matrix_figure(matrix: np.ndarray, classes: list[str]) -> plt.Figure:
    size = max(5.0, 0.6 * len(classes))
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=ax, cmap="Blues", colorbar=False,
                                                                 xticks_rotation=45)
    ax.set_title("Confusion matrix (test set)")
    fig.tight_layout()
    return fig


def mistakes_figure(images: np.ndarray, true: list[str], predicted: list[str], probability: np.ndarray,
                    cols: int = 8) -> plt.Figure:
    """A grid of images titled 'true -> predicted (probability)'."""
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.9), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{true[i]} -> {predicted[i]}\n({probability[i]:.0%})", fontsize=9, color="red")
    fig.suptitle("Worst mistakes: true -> predicted (probability)")
    fig.tight_layout()
    return fig


def learning_curves_figure(history: list[dict]) -> plt.Figure:
    epochs = [h["epoch"] for h in history]
    has_accuracy = bool(history) and "valid_accuracy" in history[0]
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(11 if has_accuracy else 6, 4), squeeze=False)
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


def save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
