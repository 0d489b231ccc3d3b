"""``mnist-predict``: the predicted class and top-k probabilities for your own images, or for
the rows of CSV files when the model was trained on a table.

    mnist-predict --model_fn model.pth my_digit.png photos/ -      (- reads one image from stdin)
    mnist-predict --model_fn table.pth new_rows.csv --out predictions.csv
    mnist-predict --model_fn texts.pth review.txt reviews/ new_reviews.csv --out predictions.csv
"""

from __future__ import annotations

import io
import json
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..data.csv_data import PREDICTIONS_RECEIPT, TableOptions, read_rows, spreadsheet_safe
from ..data.images import image_files, save_preview
from ..data.tables import NUMBER, is_text
from ..errors import UserError
from ..files import probe_receipt_writable, receipt_path, unchanged_since_written, write_with_receipt
from ..inference.predictor import Prediction, Predictor, source_name
from ..kinds.tables import reading_option
from ..options import option
from ..training.outputs import check_output
from . import ModelFileOptions, OneLineParser, options_parser, parsed_options, run_cli


@dataclass
class PredictOptions(ModelFileOptions):
    top_k: int = option(3, "how many classes to list per input", low=1)
    json: bool = option(False, "print one JSON document instead of text")
    tta: bool = option(False, "pictures: average the probabilities over the mirror and shifts the model trained with")
    show: str | None = option(None, "write what the model saw (the prepared input) as PNGs into DIR",
                              cli={"metavar": "DIR"})
    out: str | None = option(None, "also write the predictions to CSV: a table's rows with theirs, or a file, "
                             "prediction and probability per picture", cli={"metavar": "CSV"})
    delimiter: str | None = reading_option("delimiter", "table and text models' CSV files: ")
    decimal: str | None = reading_option("decimal", "table models: ")
    encoding: str | None = reading_option("encoding", "table and text models' files: ")
    images: list[str] = field(default_factory=list)  # the INPUT arguments: not a flag


def build_parser() -> OneLineParser:
    p = options_parser(PredictOptions, "mnist-predict", __doc__)
    p.add_argument("images", nargs="+", metavar="INPUT",
                   help="image files (PNG, JPEG, ...), folders of them, or - for stdin; for a table model: CSV files "
                        "with the training file's columns (the target column may be there or not)")
    return p


def predict(argv: list[str] | None = None) -> list[dict]:
    """Predict for every source given, in the order given; an unreadable image is reported on its own
    line and the others are still predicted (the command then exits 1)."""
    parsed = build_parser().parse_args(argv)
    args = parsed_options(PredictOptions, parsed)
    args.images = parsed.images  # positional, so made by argparse alone
    if args.images.count("-") > 1:
        raise UserError("- (standard input) can be given only once")
    predictor = Predictor(args.model_fn, tta=args.tta)
    if predictor.data_kind.takes_texts:
        return predict_texts(args, predictor)
    if not predictor.takes_images:
        return predict_rows(args, predictor)
    for flag in ("delimiter", "decimal", "encoding"):
        if getattr(args, flag):
            raise UserError(f"--{flag} is for table models; {args.model_fn} takes images")
    if args.out:
        inputs = {f"INPUT {path}": path for path in args.images if path != "-"} | {"--model_fn": args.model_fn}
        _check_out(args.out, inputs)
    sources = [_stdin_image() if path == "-" else path for path in _expand(args.images)]
    results = predictor.predict_each(sources, top_k=args.top_k)
    if len(results) == 1 and isinstance(results[0], UserError):
        raise results[0]
    predictions = [r for r in results if isinstance(r, Prediction)]
    if args.out:  # first: a closed pipe on the printing side must not cost the file
        _write_predictions([pd.DataFrame({"file": [p.source for p in predictions],
                                          "prediction": [p.label for p in predictions]})], predictions, Path(args.out))
    if args.json:
        print(json.dumps([r.to_dict() if isinstance(r, Prediction) else {"source": source_name(s), "error": str(r)}
                          for s, r in zip(sources, results, strict=True)], indent=2))
    for result in results:
        if not isinstance(result, Prediction):
            print(f"mnist-predict: error: {result}", file=sys.stderr, flush=True)
        elif not args.json:
            others = ", ".join(f"{label} {prob:.1%}" for label, prob in result.top_k)
            print(f"{result.source}: {result.label} ({others})", flush=True)
    if args.show:  # after printing: a preview that cannot be written costs no answers
        _write_previews(predictions, Path(args.show))
    if not predictions:
        raise PartlyFailed(f"none of the {len(results)} images could be read")
    if len(predictions) < len(results):
        raise PartlyFailed(f"{len(results) - len(predictions)} of {len(results)} images could not be read; "
                           "the others were predicted")
    return [p.to_dict() for p in predictions]


def predict_rows(args, predictor: Predictor) -> list[dict]:
    """A prediction for every row of every CSV file given, printed (or as JSON) and, with --out,
    written beside the rows. Any unusable cell stops the command before anything is written."""
    specs = predictor.data_kind.columns
    if specs is None:
        raise UserError(f"{args.model_fn} takes {predictor.data_kind.name}: mnist-predict reads images and CSV files "
                        "of table rows; predict from Python (Predictor)")
    if args.show or "-" in args.images:
        raise UserError(f"{args.model_fn} is a table model: give CSV files of rows (not --show, not -)")
    names, numbers = [spec["name"] for spec in specs], [spec["name"] for spec in specs if spec["type"] == NUMBER]
    options = TableOptions(delimiter=args.delimiter, decimal=args.decimal, encoding=args.encoding,
                           usual_decimal=predictor.data_kind.values.get("decimal", "."))
    if args.out:
        inputs = {f"INPUT {path}": path for path in args.images} | {"--model_fn": args.model_fn}
        _check_out(args.out, inputs)
    frames, predictions = [], []
    for path in args.images:
        frame = read_rows(Path(path), options, names, numbers)
        if frame.attrs.get("read_as"):  # not UTF-8, or decimal commas: say how it was read
            print(f"mnist-predict: note: {path}{frame.attrs['read_as']}", file=sys.stderr)
        rows = _noted(predictor.rows, frame, top_k=args.top_k, name=path)
        frames.append(_with_predictions(frame, rows, path, with_file=len(args.images) > 1, out=args.out))
        predictions += rows
    if args.out:  # first: a closed pipe on the printing side must not cost the file
        _write_predictions(frames, predictions, Path(args.out))
    _print_predictions(predictions, args.json)
    return [r.to_dict() for r in predictions]


def _noted(predict, *args, **kwargs):
    """``predict(*args, **kwargs)``, its warnings (gaps where training had none, texts of unknown characters: answered,
    but worth saying) printed as notes."""
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always", UserWarning)
        rows = predict(*args, **kwargs)
    for note in notes:
        print(f"mnist-predict: note: {note.message}", file=sys.stderr)
    return rows


def predict_texts(args, predictor: Predictor) -> list[dict]:
    """A prediction for every .txt file (folders: the .txt files in them), for ``-`` (standard input,
    one text), and for every row of a CSV or TSV file's text column (the one training read, when the
    file has it; else the column of long, mostly distinct cells); with --out, written as a table."""
    from ..data.texts import TEXT_SUFFIXES, read_text_input, text_column_of

    if args.show or args.tta:
        raise UserError(f"--show and --tta are for pictures; {args.model_fn} takes texts")
    if args.out:
        inputs = {f"INPUT {path}": path for path in args.images if path != "-"} | {"--model_fn": args.model_fn}
        _check_out(args.out, inputs)
    frames, predictions = [], []
    for path in args.images:
        if path != "-" and Path(path).is_file() and not path.lower().endswith(TEXT_SUFFIXES):
            frame = read_rows(Path(path), TableOptions(delimiter=args.delimiter, encoding=args.encoding))
            column = text_column_of(Path(path), frame, predictor.metadata.get("feature_names"))
            rows = _noted(predictor.predict, frame[column].tolist(), top_k=args.top_k)
            for i, row in enumerate(rows, start=1):
                row.source = f"{path}, row {i}"
            frames.append(_with_predictions(frame, rows, path, with_file=len(args.images) > 1, out=args.out))
        else:
            names, texts, skipped = read_text_input(path, args.encoding, sys.stdin)
            for note in skipped:
                print(f"mnist-predict: {note}", file=sys.stderr)
            rows = _noted(predictor.predict, texts, top_k=args.top_k) if texts else []
            for name, row in zip(names, rows, strict=True):
                row.source = name
            frames.append(pd.DataFrame({"file": names}).assign(prediction=[r.label for r in rows]))
        predictions += rows
    if args.out:  # first: a closed pipe on the printing side must not cost the file
        _write_predictions(frames, predictions, Path(args.out))
    _print_predictions(predictions, args.json)
    return [r.to_dict() for r in predictions]


def _print_predictions(predictions: list[Prediction], as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.to_dict() for r in predictions], indent=2))
        return
    for r in predictions:
        others = f" ({', '.join(f'{label} {prob:.1%}' for label, prob in r.top_k)})" if r.top_k else ""
        print(f"{r.source}: {r.label}{others}")


def _check_out(out: str, inputs: dict[str, str]) -> None:
    """--out replaces only a file that is provably an earlier one, unchanged since: a user's CSV may end
    in a column named prediction, and a file's header proves nothing. Its receipt must be writable too:
    a file written without one could never be replaced."""
    path = Path(out)
    # check_output refuses links, inputs and folders; whether the file is ours is said here, in our words.
    check_output("--out", path, inputs, replaceable=(lambda _: True, "predictions CSV"))
    if path.exists() and not unchanged_since_written(path, PREDICTIONS_RECEIPT):
        raise UserError(f"--out {out} exists and is not an unedited earlier --out of mnist-predict (no matching "
                        f"receipt beside it); it is never replaced: choose another --out, or remove {out}")
    try:
        probe_receipt_writable(path)
    except OSError as e:
        raise UserError(f"--out {out}: its receipt {receipt_path(path).name} cannot be written beside it "
                        f"({e.strerror}); choose a shorter --out") from e


def _with_predictions(frame: pd.DataFrame, rows: list[Prediction], path: str, with_file: bool,
                      out: str | None) -> pd.DataFrame:
    """A file's rows with the columns --out adds: ``file`` first (when several files are read), the
    prediction and probability last. An input's own columns of those names (an earlier --out's) give
    way to this run's, said in a line when the file does not look like an earlier --out."""
    with_probability = bool(rows) and rows[0].probability is not None  # a regression model gives none
    ours = ["file"] * with_file + ["prediction"] + ["probability"] * with_probability
    replaced = [name for name in ours if name in frame.columns]
    if replaced and out and not frame.attrs.get("ours"):
        print(f"mnist-predict: note: {path}: its column{'s' * (len(replaced) > 1)} {', '.join(map(repr, replaced))} "
              f"{'are' if len(replaced) > 1 else 'is'} replaced in --out {out} by this run's", file=sys.stderr)
    frame = frame.drop(columns=replaced)
    if with_file:  # which file each written row came from
        frame.insert(0, "file", path)
    return frame.assign(prediction=[r.label for r in rows])


def _write_predictions(frames, predictions, path: Path) -> None:
    table = pd.concat(frames, ignore_index=True)
    if predictions and predictions[0].probability is not None:
        table["probability"] = [r.probability for r in predictions]
    # Text cells that start like a formula are escaped (OWASP): class names and a table's cells are
    # anyone's text, and a spreadsheet would run them. read_rows reads such a file back as it was.
    table = table.rename(columns=spreadsheet_safe)
    for name in table.columns:
        if is_text(table[name]):
            table[name] = table[name].map(spreadsheet_safe)
    write_with_receipt(path, lambda f: table.to_csv(f, index=False), PREDICTIONS_RECEIPT)


class PartlyFailed(Exception):
    """Some inputs were predicted and printed, others could not be read (each reported already)."""


def _expand(paths: list[str]) -> list[str]:
    """Folders become the images they hold; files and - (stdin) keep the place they were given in."""
    return [item for path in paths for item in (["-"] if path == "-" else map(str, image_files([path])))]


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
        label = re.sub(r"[^\w.-]+", "-", p.label)  # "T-shirt/top" must not become a folder
        save_preview(p.model_input, folder / f"{i:03d}_{stem}_as_{label}.png")


def main(argv: list[str] | None = None) -> None:
    """Exit status: 0 when every image was predicted, 1 when some of several could not be read, 2 for a
    usage error (a single image that cannot be read is one: one line, no JSON)."""
    try:
        run_cli("mnist-predict", lambda: predict(argv))
    except PartlyFailed as e:
        print(f"mnist-predict: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
