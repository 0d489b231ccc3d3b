"""Test-time augmentation (``--tta``): a picture's probabilities averaged over the mirror and shifts its
model trained with, the same picture seen a few ways.

The views are the identity, a left-right mirror when the run used ``--hflip``, and shifts of half the
largest training shift (``--shift_px``, or ``--augment``'s 2 pixels) left, right, up and down, with
the uncovered edge black as in training. A run that trained with neither has nothing to average.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..errors import UserError
from ..kinds import as_record

# --augment's largest shift (training.augment.RandomDistortion.max_shift_px; a test keeps them equal):
# inference does not import training code.
AUGMENT_SHIFT_PX = 2.0


@dataclass(frozen=True)
class View:
    flip: bool = False
    dy: int = 0
    dx: int = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            x = x.flip(-1)
        return shifted(x, self.dy, self.dx) if self.dy or self.dx else x


def views_for(saved: dict) -> list[View]:
    """The views for a model file's contents (``load_model``'s), refused for a model of table rows."""
    record = as_record(saved["preprocessing"])
    if not record.takes_pictures:
        raise UserError(f"--tta mirrors and shifts pictures; this model reads {record.name}")
    return views(saved.get("config") or {})


def views(config: dict) -> list[View]:
    """The views a model file's training configuration allows; refused when it trained with neither
    mirror nor shifts."""
    # --augment's distortion has its own shift, and --shift_px then goes unused (see build.make_augment).
    shift = AUGMENT_SHIFT_PX if config.get("augment") else config.get("shift_px") or 0.0
    step = round(shift / 2)
    if shift and step == 0:
        step = 1
    found = [View()]
    if config.get("hflip"):
        found.append(View(flip=True))
    if step:
        found += [View(dy=step), View(dy=-step), View(dx=step), View(dx=-step)]
    if len(found) == 1:
        raise UserError("--tta averages over the mirror and shifts the run trained with, and this one trained with "
                        "neither (--hflip, --shift_px or --augment)")
    return found


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(N, C, H, W) moved ``dy`` rows down and ``dx`` columns right; what comes in is 0."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + height, left:left + width]


def averaged_log_probs(model, x: torch.Tensor, chosen: list[View] | None) -> torch.Tensor:
    """log of the mean over ``chosen`` of the model's probabilities for ``x``; without views, the model's
    own answer."""
    if not chosen:
        return model(x)
    probabilities = torch.stack([model(view(x)).exp() for view in chosen]).mean(dim=0)
    return probabilities.log()
