"""A model's mean loss on some rows, and its accuracy (classes) or squared error and R^2 (a number)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..data.dataset import model_input
from ..data.preprocessing import CLASSIFICATION, REGRESSION
from ..utils import device_of

# Evaluation keeps no activations for backward, so it can use much larger batches.
MIN_EVAL_BATCH_SIZE = 1024


def autocast(device: torch.device, enabled: bool):
    """bfloat16 mixed precision where ``enabled`` (``precision.py`` decides where it pays)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.inference_mode()
def evaluate(model: nn.Module, crit: Callable, data: tuple, batch_size: int = MIN_EVAL_BATCH_SIZE,
             amp: bool = False, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
             task: str | None = None) -> dict:
    """Mean loss of ``model`` on ``data`` in eval mode; with ``task`` "classification" also the
    accuracy, with "regression" the mean squared error and R^2.

    ``reduce`` sums the totals over the processes of a distributed run, each of which holds a shard
    of the data: the metrics are then those of all the shards together, the same in every process.
    """
    model.eval()
    device = device_of(model)
    x, y = (t.to(device) for t in data)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    squared_error = torch.zeros((), device=device)
    batch_size = max(batch_size, MIN_EVAL_BATCH_SIZE)
    for x_i, y_i in zip(x.split(batch_size), y.split(batch_size), strict=True):
        with autocast(device, amp):
            y_hat = model(model_input(x_i, device))
        # Losses and log-probabilities in float32 whatever the precision inside: the best epoch is
        # chosen on these numbers, and bfloat16 keeps only 3 significant digits.
        y_hat = y_hat.float()
        total_loss += crit(y_hat, y_i) * len(x_i)
        if task == CLASSIFICATION:
            correct += (y_hat.argmax(dim=-1) == y_i).sum()
        elif task == REGRESSION:
            squared_error += (y_hat - y_i).pow(2).sum()
    # One vector of sums in float64, read back (and, distributed, all-reduced) at once.
    y64 = y.double() if task == REGRESSION else y.new_zeros(0, dtype=torch.float64)
    totals = torch.stack([total_loss.double(), correct.double(), squared_error.double(),
                          torch.tensor(float(len(x)), dtype=torch.float64, device=device),
                          torch.tensor(float(y.numel()), dtype=torch.float64, device=device),
                          y64.sum(), y64.pow(2).sum()])
    if reduce is not None:
        totals = reduce(totals)
    loss, n_correct, sse, rows, values, y_sum, y_squares = totals.tolist()
    metrics = {"loss": loss / max(rows, 1)}
    if task == CLASSIFICATION:
        metrics["accuracy"] = n_correct / max(rows, 1)
    elif task == REGRESSION:
        # R^2 = 1 - SSE / SST: the share of the targets' variance the model explains.
        metrics["mse"] = sse / max(values, 1)
        metrics["r2"] = 1 - sse / max(y_squares - y_sum * y_sum / max(values, 1), 1e-12)
    return metrics
