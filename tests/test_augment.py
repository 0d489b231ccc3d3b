import torch

from mnist_classifier.augment import RandomDistortion


def digit_like(batch: int = 4, side: int = 28) -> torch.Tensor:
    x = torch.zeros(batch, side, side)
    x[:, 8:20, 12:16] = 1.0  # a bar, away from the border so no mass is cut off
    return x.view(batch, -1)


def centre_of_mass(x: torch.Tensor, side: int = 28) -> torch.Tensor:
    images = x.view(-1, side, side)
    coords = torch.arange(side, dtype=torch.float32)
    mass = images.sum(dim=(1, 2))
    rows = (images.sum(dim=2) * coords).sum(dim=1) / mass
    cols = (images.sum(dim=1) * coords).sum(dim=1) / mass
    return torch.stack([rows, cols], dim=1)


def test_no_distortion_is_the_identity():
    x = torch.rand(3, 784)
    still = RandomDistortion(28, max_rotation_deg=0, max_scale=0, max_shear=0, max_shift_px=0, elastic_px=0)
    torch.testing.assert_close(still(x), x, atol=1e-5, rtol=0)


def test_shifts_stay_within_the_limit_and_vary():
    x = digit_like(64)
    shift = RandomDistortion.rigid(28, shift_px=3)
    moved = centre_of_mass(shift(x)) - centre_of_mass(x)
    assert moved.abs().max() <= 3.01
    assert moved.abs().max() > 1 and moved.std() > 0.5  # really random, not a fixed offset


def test_default_distortion_keeps_shape_range_and_most_of_the_digit():
    x = digit_like(32)
    out = RandomDistortion(28)(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 + 1e-6
    assert not torch.allclose(out, x)
    kept = out.sum(dim=1) / x.sum(dim=1)
    assert ((kept > 0.5) & (kept < 1.6)).all()  # warped, not erased or smeared over the frame
    assert (centre_of_mass(out) - centre_of_mass(x)).norm(dim=1).max() < 5


def test_flip_only_mirrors_about_half_of_the_images_exactly():
    torch.manual_seed(0)
    x = torch.rand(200, 784)
    out = RandomDistortion.rigid(28, flip_p=0.5)(x)
    mirrored = x.view(-1, 28, 28).flip(-1).reshape(200, -1)
    is_mirrored = (out - mirrored).abs().amax(dim=1) < 1e-5
    is_same = (out - x).abs().amax(dim=1) < 1e-5
    assert (is_mirrored | is_same).all() and 60 < is_mirrored.sum() < 140
