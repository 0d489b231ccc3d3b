"""``mnist-evaluate``: how good is a model file, and where does it go wrong?

    mnist-evaluate --model_fn model.pth --out_dir evaluation

Prints the test accuracy and per-class precision, recall and F1, and writes into ``--out_dir``:
confusion_matrix.png, worst_mistakes.png, learning_curves.png and metrics.json.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, classification_report, confusion_matrix

from ..data.dataset import CLASSIFICATION, Dataset, model_input, take_rows
from ..errors import UserError
from ..evaluation import plots
from ..evaluation.test_data import other_folder, prepared_dataset
from ..files import atomic_write
from ..inference.model_file import load_model
from ..inference.tta import averaged_log_probs, views_for
from ..options import option
from ..utils import device_of
from . import ModelFileOptions, OneLineParser, options_parser, parsed_options, run_cli


@dataclass
class EvaluateOptions(ModelFileOptions):
    out_dir: str = option("evaluation", "where the plots and metrics.json go")
    data_dir: str | None = option(None, "where the dataset is kept (default: the one used for training)")
    dataset: str | None = option(None, "judge a folder model on another folder of pictures (its test/ split, or "
                                 "every picture; class folders named as the model's classes)",
                                 cli={"metavar": "folder:PATH"})
    tta: bool = option(False, "average each picture's probabilities over the mirror and shifts the model trained "
                       "with")
    worst: int = option(24, "how many mistakes to show", low=0)
    json: bool = option(False, "print the metrics as JSON instead of text")


def build_parser() -> OneLineParser:
    return options_parser(EvaluateOptions, "mnist-evaluate", __doc__)


def evaluate_model_file(model_fn: str, out_dir: Path, data_dir: str | None = None, worst: int = 24,
                        dataset: str | None = None, tta: bool = False) -> dict:
    """Compute the test metrics of a model file (on its own test rows, or ``dataset``'s pictures) and
    write the plots and metrics.json into ``out_dir``. ``tta``: test-time augmentation (``inference.tta``)."""
    model, saved = load_model(model_fn)
    if saved["dataset"].get("task", CLASSIFICATION) != CLASSIFICATION:
        raise UserError(f"{model_fn}: a regression model; mnist-evaluate reports on classifiers")
    dataset = other_folder(saved, dataset, data_dir) if dataset else prepared_dataset(saved, data_dir)
    chosen = views_for(saved) if tta else None
    x, y = dataset.test
    with torch.inference_mode():
        probabilities = torch.cat([averaged_log_probs(model, model_input(chunk, device_of(model)), chosen).exp()
                                   for chunk in x.split(4096)])
    confidence, predicted = probabilities.max(dim=-1)
    y_true, y_pred = y.numpy(), predicted.numpy()
    classes = dataset.classes
    labels = list(range(len(classes)))

    report = classification_report(y_true, y_pred, labels=labels, target_names=classes, output_dict=True,
                                   zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    metrics = {
        "model_fn": str(model_fn),
        "dataset": dataset.name,
        "n_test": len(y_true),
        "unit": dataset.kind.unit,
        "accuracy": float((y_true == y_pred).mean()),
        # Beside accuracy, what a rare class's mistakes cost: each class counts the same.
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "tta": [vars(view) for view in chosen] if chosen else None,
        "per_class": {name: report[name] for name in classes},
        "macro_avg": report["macro avg"],
        "confusion_matrix": matrix.tolist(),
    }
    files = _write_outputs(out_dir, metrics, dataset, saved.get("history", []), y_true, y_pred, confidence, worst)
    metrics["files"] = files
    atomic_write(out_dir / "metrics.json", lambda f: f.write(json.dumps(metrics, indent=2).encode()))
    metrics["report_text"] = classification_report(y_true, y_pred, labels=labels, target_names=classes, digits=4,
                                                   zero_division=0)
    return metrics


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The mean recall of the classes the test rows have (scikit-learn's, without its warning when a
    prediction names a class the test rows lack: that is a mistake like any other)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def _write_outputs(out_dir: Path, metrics: dict, dataset: Dataset, history: list[dict], y_true: np.ndarray,
                   y_pred: np.ndarray, confidence: torch.Tensor, worst: int) -> dict:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out_dir {out_dir}: cannot create the folder ({e.strerror})") from e
    classes = dataset.classes
    files = {"confusion_matrix": str(plots.save(plots.confusion_matrix_figure(
        np.array(metrics["confusion_matrix"]), classes), out_dir / "confusion_matrix.png"))}
    wrong = np.flatnonzero(y_true != y_pred)
    if dataset.kind.takes_pictures and len(wrong):
        # The most confident mistakes are the most telling: sort by the wrong class's probability.
        order = wrong[np.argsort(-confidence.numpy()[wrong])][:worst]
        images = model_input(take_rows(dataset.test[0], torch.from_numpy(order)), torch.device("cpu")).numpy()
        # Grayscale as (H, W), colour as (H, W, 3): how matplotlib shows each.
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
        figure = plots.mistakes_figure(images, [classes[i] for i in y_true[order]],
                                       [classes[i] for i in y_pred[order]], confidence.numpy()[order])
        files["worst_mistakes"] = str(plots.save(figure, out_dir / "worst_mistakes.png"))
    if dataset.kind.takes_texts and len(wrong):
        files["worst_mistakes"] = str(_write_text_mistakes(out_dir / "worst_mistakes.txt", dataset, y_true, y_pred,
                                                           confidence, wrong, worst))
    if history:
        files["learning_curves"] = str(plots.save(plots.learning_curves_figure(history),
                                                  out_dir / "learning_curves.png"))
    files["metrics"] = str(out_dir / "metrics.json")
    return files


# Characters of a text shown beside its mistake.
MISTAKE_CHARS = 300


def _write_text_mistakes(path: Path, dataset: Dataset, y_true: np.ndarray, y_pred: np.ndarray,
                         confidence: torch.Tensor, wrong: np.ndarray, worst: int) -> Path:
    """The most confident mistakes on texts, a block each: the true class, the prediction and its
    probability, then the text's first ``MISTAKE_CHARS`` characters on one line."""
    order = wrong[np.argsort(-confidence.numpy()[wrong])][:worst]
    classes, texts = dataset.classes, dataset.test[0]
    blocks = []
    for rank, i in enumerate(order, start=1):
        line = " ".join(texts.text(int(i)).split())
        line = line if len(line) <= MISTAKE_CHARS else line[:MISTAKE_CHARS - 3] + "..."
        blocks.append(f"{rank}. true {classes[y_true[i]]}, predicted {classes[y_pred[i]]} "
                      f"({float(confidence[i]):.1%})\n   {line}\n")
    atomic_write(path, lambda f: f.write("\n".join(blocks).encode("utf-8")))
    return path


def main(argv: list[str] | None = None) -> None:
    def action():
        args = parsed_options(EvaluateOptions, build_parser().parse_args(argv))
        metrics = evaluate_model_file(args.model_fn, Path(args.out_dir), args.data_dir, args.worst, args.dataset,
                                      args.tta)
        text = metrics.pop("report_text")
        tta_words = f", averaged over {len(metrics['tta'])} views" if metrics["tta"] else ""
        if args.json:
            print(json.dumps(metrics, indent=2))
        else:
            print(text)
            print(f"Test accuracy: {metrics['accuracy']:.2%} ({metrics['n_test']} {metrics['unit']}{tta_words}); "
                  f"balanced accuracy {metrics['balanced_accuracy']:.2%}, macro-F1 {metrics['macro_f1']:.4f}")
            print("Wrote " + ", ".join(metrics["files"].values()))

    run_cli("mnist-evaluate", action)


if __name__ == "__main__":
    main()
