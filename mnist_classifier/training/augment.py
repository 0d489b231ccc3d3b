"""Data augmentation on whole batches, where the data lives: random affine and elastic distortion.

Each batch is resampled once through ``grid_sample`` with a grid that combines a random affine map
(rotation, per-axis scale, shear, shift) and a smooth random displacement field (the elastic
distortion of Simard et al., 2003). The field is drawn on a coarse grid and upsampled bicubically,
which gives the same smooth, local warps as blurring a per-pixel field, for a fraction of the work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class RandomDistortion:
    """Callable ``x -> distorted x`` for a batch of images, shape (B, C, H, W)."""

    max_rotation_deg: float = 10.0
    max_scale: float = 0.1  # each axis scaled by a factor in [1 - max_scale, 1 + max_scale]
    max_shear: float = 0.1
    max_shift_px: float = 2.0
    elastic_px: float = 1.0  # standard deviation of the elastic displacement, in pixels
    elastic_grid: int = 5  # the displacement field's coarse resolution: smaller means smoother
    flip_p: float = 0.0  # chance of a left-right mirror: right for clothes, wrong for digits

    @classmethod
    def rigid(cls, shift_px: float = 0.0, flip_p: float = 0.0) -> RandomDistortion:
        """Only shifts and mirrors: no rotation, scaling, shear or elastic warp."""
        return cls(max_rotation_deg=0, max_scale=0, max_shear=0, max_shift_px=shift_px, elastic_px=0,
                   flip_p=flip_p)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self._random_affine(images), list(images.shape), align_corners=False)
        if self.elastic_px > 0:
            grid = grid + self._random_field(images)
        return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                             align_corners=False)

    def _uniform(self, batch: int, like: torch.Tensor, limit: float) -> torch.Tensor:
        return (torch.rand(batch, device=like.device) * 2 - 1) * limit

    def _random_affine(self, like: torch.Tensor) -> torch.Tensor:
        """(B, 2, 3) maps from output to input coordinates, in grid_sample's [-1, 1] units."""
        batch, _, height, width = like.shape
        angle = self._uniform(batch, like, math.radians(self.max_rotation_deg))
        scale_x = 1 + self._uniform(batch, like, self.max_scale)
        scale_y = 1 + self._uniform(batch, like, self.max_scale)
        shear = self._uniform(batch, like, self.max_shear)
        # A pixel is 2 / width of grid_sample's x range and 2 / height of its y range.
        pixel = torch.tensor([2 / width, 2 / height], device=like.device)
        shift = self._uniform(2 * batch, like, self.max_shift_px).view(batch, 2) * pixel
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([
            torch.stack([cos / scale_x, (-sin + shear) / scale_x, shift[:, 0]], dim=-1),
            torch.stack([sin / scale_y, cos / scale_y, shift[:, 1]], dim=-1),
        ], dim=1)
        if self.flip_p > 0:
            mirror = torch.where(torch.rand(batch, device=like.device) < self.flip_p, -1.0, 1.0)
            theta[:, :, 0] = theta[:, :, 0] * mirror.unsqueeze(1)  # x_in = -x_out: a left-right mirror
        return theta

    def _random_field(self, like: torch.Tensor) -> torch.Tensor:
        """A smooth (B, H, W, 2) displacement, with ``elastic_px`` pixels of spread."""
        batch, _, height, width = like.shape
        coarse = torch.randn(batch, 2, self.elastic_grid, self.elastic_grid, device=like.device)
        field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
        pixel = torch.tensor([2 / width, 2 / height], device=like.device)
        return field.permute(0, 2, 3, 1) * self.elastic_px * pixel
