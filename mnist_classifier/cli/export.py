"""``mnist-export``: a model file for runtimes without this package, ONNX or TorchScript.

    mnist-export --model_fn model.pth --format onnx --out model.onnx

Writes the export (batch size dynamic) and, beside it, ``OUT.json``: the classes, the input's
shape and the preprocessing record, so that any consumer can prepare input as training did. The
export is checked against PyTorch on 1,000 inputs before it is kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..inference.export import EXPORT_FORMAT, FORMATS, SUFFIXES, export_model, read_metadata
from ..options import option
from ..training.outputs import check_output
from . import ModelFileOptions, OneLineParser, options_parser, parsed_options, run_cli


@dataclass
class ExportOptions(ModelFileOptions):
    format: str = option(FORMATS[0], "onnx or torchscript", choices=FORMATS)
    out: str | None = option(None, "where the export goes (default: MODEL_FN with .onnx or .pt)")


def build_parser() -> OneLineParser:
    return options_parser(ExportOptions, "mnist-export", __doc__)


def check_export_outputs(out: Path, model_fn: str) -> None:
    """The export may replace an earlier export of ours and its JSON an earlier description; nothing
    else is ever replaced."""
    sidecar = Path(f"{out}.json")
    for path, ours in ((out, lambda p: read_metadata(p) is not None), (sidecar, is_description_of_ours)):
        if path.is_file() and not path.is_symlink() and ours(path):
            continue
        check_output("--out", path, {"--model_fn": model_fn})


def is_description_of_ours(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> None:
    def action():
        args = parsed_options(ExportOptions, build_parser().parse_args(argv))
        out = Path(args.out or Path(args.model_fn).with_suffix(SUFFIXES[args.format]))
        check_export_outputs(out, args.model_fn)
        exported = export_model(args.model_fn, args.format, out)
        print(f"Exported {args.model_fn} to {exported.path} ({args.format}, {exported.path.stat().st_size:,} bytes; "
              f"description in {exported.sidecar}). Checked on {exported.rows_checked:,} inputs: largest "
              f"difference from PyTorch {exported.max_difference:.2g}, same class for every input.")

    run_cli("mnist-export", action)


if __name__ == "__main__":
    main()
