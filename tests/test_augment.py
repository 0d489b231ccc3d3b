import torch

from mnist_classifier.training.augment import RandomDistortion


def digit_like(batch: int = 4, side: int = 28) -> torch.Tensor:
    x = torch.zeros(batch, 1, side, side)
    x[:, :, 8:20, 12:16] = 1.0  # a bar, away from the border so no mass is cut off
    return x


def centre_of_mass(x: torch.Tensor, height: int = 28, width: int = 28) -> torch.Tensor:
    images = x.reshape(-1, height, width)
    mass = images.sum(dim=(1, 2))
    rows = (images.sum(dim=2) * torch.arange(height, dtype=torch.float32)).sum(dim=1) / mass
    cols = (images.sum(dim=1) * torch.arange(width, dtype=torch.float32)).sum(dim=1) / mass
    return torch.stack([rows, cols], dim=1)


def test_no_distortion_is_the_identity():
    x = torch.rand(3, 1, 28, 28)
    still = RandomDistortion(max_rotation_deg=0, max_scale=0, max_shear=0, max_shift_px=0, elastic_px=0)
    torch.testing.assert_close(still(x), x, atol=1e-5, rtol=0)


def test_shifts_stay_within_the_limit_and_vary():
    x = digit_like(64)
    shift = RandomDistortion.rigid(shift_px=3)
    moved = centre_of_mass(shift(x)) - centre_of_mass(x)
    assert moved.abs().max() <= 3.01
    assert moved.abs().max() > 1 and moved.std() > 0.5  # really random, not a fixed offset


def test_default_distortion_keeps_shape_range_and_most_of_the_digit():
    x = digit_like(32)
    out = RandomDistortion()(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 + 1e-6
    assert not torch.allclose(out, x)
    kept = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert ((kept > 0.5) & (kept < 1.6)).all()  # warped, not erased or smeared over the frame
    assert (centre_of_mass(out) - centre_of_mass(x)).norm(dim=1).max() < 5


def test_flip_only_mirrors_about_half_of_the_images_exactly():
    torch.manual_seed(0)
    x = torch.rand(200, 1, 28, 28)
    out = RandomDistortion.rigid(flip_p=0.5)(x)
    mirrored = x.flip(-1)
    is_mirrored = (out - mirrored).abs().amax(dim=(1, 2, 3)) < 1e-5
    is_same = (out - x).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert (is_mirrored | is_same).all() and 60 < is_mirrored.sum() < 140


def test_non_square_colour_images_shift_by_pixels_of_their_own_axes():
    torch.manual_seed(0)
    x = torch.zeros(16, 3, 20, 40)
    x[:, :, 8:12, 18:22] = 1.0
    out = RandomDistortion.rigid(shift_px=2)(x)
    assert out.shape == x.shape
    moved = centre_of_mass(out[:, :1], 20, 40) - centre_of_mass(x[:, :1], 20, 40)
    assert moved.abs().max() <= 2.01 and moved.abs().max() > 0.5
    torch.testing.assert_close(out[:, 0], out[:, 2])  # every channel moves together
