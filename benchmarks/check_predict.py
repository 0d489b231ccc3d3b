"""Does `mnist-predict` on people-style image files agree with the model on the original tensors?

    python benchmarks/check_predict.py --model_fn model.pth [--n 200]

Saves MNIST test images as PNG the way a person's image would arrive: dark digit on a light
background, at a larger size, off-centre on a bigger canvas. Predicts on the files (through the
same preprocessing as `mnist-predict`) and on the original tensors, and prints the agreement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_classifier.data.mnist import load_mnist  # noqa: E402
from mnist_classifier.inference.predictor import Predictor  # noqa: E402


def as_photo(image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A 28x28 digit as a person would bring it: inverted, scaled up 3x, placed off-centre."""
    digit = Image.fromarray(255 - np.round(image * 255).astype(np.uint8)).resize((84, 84), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (160, 140), 255)
    canvas.paste(digit, (int(rng.integers(0, 76)), int(rng.integers(0, 56))))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_fn", required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--data_dir", default="data")
    args = parser.parse_args()

    predictor = Predictor(args.model_fn)
    x, y = load_mnist(is_train=False, flatten=False, data_dir=args.data_dir)
    x, y = x[: args.n], y[: args.n]
    on_tensors = [p.label for p in predictor.predict(x)]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, image in enumerate(x.numpy()):
            paths.append(Path(tmp) / f"{i:03d}.png")
            as_photo(image, rng).save(paths[-1])
        on_files = [p.label for p in predictor.predict(paths)]
    agree = np.mean([a == b for a, b in zip(on_tensors, on_files, strict=True)])
    right_tensors = np.mean([a == str(int(t)) for a, t in zip(on_tensors, y, strict=True)])
    right_files = np.mean([a == str(int(t)) for a, t in zip(on_files, y, strict=True)])
    print("| images | agreement files vs tensors | accuracy on tensors | accuracy on the PNG files |")
    print("| --- | --- | --- | --- |")
    print(f"| {args.n} | {agree:.1%} | {right_tensors:.1%} | {right_files:.1%} |")


if __name__ == "__main__":
    main()
