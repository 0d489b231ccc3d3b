"""``mnist-predict``: the predicted class and top-k probabilities for your own images.

    mnist-predict --model_fn model.pth my_digit.png photos/ -      (- reads one image from stdin)
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from ..data.images import image_files, save_preview
from ..errors import UserError
from ..inference.predictor import Predictor
from . import OneLineParser, run_cli


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="mnist-predict", description=__doc__)
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...), folders of them, or - for stdin")
    p.add_argument("--model_fn", required=True, help="a model file written by mnist-train")
    p.add_argument("--top_k", type=int, default=3, help="how many classes to list per image (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--show", metavar="DIR", help="write what the model saw (the prepared input) as PNGs into DIR")
    return p


def predict(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if args.top_k < 1:
        raise UserError(f"--top_k must be at least 1, got {args.top_k}")
    predictor = Predictor(args.model_fn)
    sources = [_stdin_image() if path == "-" else path for path in _expand(args.images)]
    predictions = predictor.predict(sources, top_k=args.top_k)
    if args.show:
        _write_previews(predictions, Path(args.show))
    results = [p.to_dict() for p in predictions]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for p in predictions:
            others = ", ".join(f"{label} {prob:.1%}" for label, prob in p.top_k)
            print(f"{p.source}: {p.label} ({others})")
    return results


def _expand(paths: list[str]) -> list:
    files = [path for path in paths if path != "-"]
    expanded = [str(p) for p in image_files(files)] if files else []
    return expanded + (["-"] if "-" in paths else [])


def _stdin_image() -> io.BytesIO:
    data = sys.stdin.buffer.read()
    if not data:
        raise UserError("-: standard input is empty")
    stream = io.BytesIO(data)
    stream.name = "-"
    return stream


def _write_previews(predictions, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--show {folder}: cannot create the folder ({e.strerror})") from e
    for i, p in enumerate(predictions):
        stem = "stdin" if p.source == "-" else Path(p.source).stem
        save_preview(p.model_input, folder / f"{i:03d}_{stem}_as_{p.label}.png")


def main(argv: list[str] | None = None) -> None:
    run_cli("mnist-predict", lambda: predict(argv))


if __name__ == "__main__":
    main()
