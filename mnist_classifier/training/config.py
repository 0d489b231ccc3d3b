"""The training configuration: one typed object, built from the flags, saved as plain values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from torch import nn

from ..data.csv_data import column_names, encoding_named
from ..data.pictures import CROP, RESIZE_POLICIES
from ..data.preprocessing import CLASSIFICATION, REGRESSION
from ..errors import ParameterError, UserError, quoted
from ..kinds import KINDS, Kind, kind_of, source_path, source_prefix, with_path
from ..kinds.tables import reading_option
from ..models import MODELS, model_options
from ..models.torchvision_models import ARCHITECTURES, Family
from ..options import check_options, option, options_of
from ..utils import default_gpu_id
from .distributed import DEFAULT_TIMEOUT_S
from .fine_tune import family_of, pretrained_side
from .precision import AMP_CHOICES, BFLOAT16, FLOAT32

__all__ = ["RunFacts", "TrainConfig", "defaults_for", "from_record", "resolve", "saved_record"]

LR_SCHEDULES = ("cosine", "onecycle", "constant")
# --model auto: the families its kind of data names (a table's: linear and mlp) train one after the
# other on the same rows, and the one with the lower validation loss is kept (model_choice.py). The
# last family's options are auto's.
AUTO = "auto"
ESTIMATOR = "estimator"  # the dataset of a model fitted from Python: rows given, no source to name


def data_kind(dataset: str) -> type[Kind]:
    """The kind of data ``dataset`` names; an estimator's rows have no source (the base kind's answers)."""
    return Kind if dataset == ESTIMATOR else kind_of(dataset)


SAMPLERS = ("shuffle", "balanced")
REGRESSION_LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss, "huber": nn.HuberLoss}

# Named sets of defaults for each model; flags given with a preset still win. Model options
# (e.g. hidden_sizes) may appear beside the training flags.
PRESETS = {
    "mlp": {
        # The shortest time to >= 98% test accuracy, chosen on validation data by
        # benchmarks/search_fast.py (docs/results.md#where-the-defaults-come-from).
        "fast": {
            "hidden_sizes": [256, 256],
            "n_epochs": 4,
            "lr": 3e-3,
            "lr_schedule": "onecycle",
            "label_smoothing": 0.1,
            "train_ratio": 0.9,
        },
        # The accuracy record for a plain MLP of the seed's blocks (docs/results.md): wide blocks,
        # distorted training images, one-cycle AdamW, label smoothing (timings: docs/results.md).
        "record": {
            "hidden_sizes": [1024, 1024, 1024],
            "n_epochs": 150,
            "batch_size": 256,
            "lr": 2e-3,
            "lr_schedule": "onecycle",
            "weight_decay": 1e-4,
            "label_smoothing": 0.1,
            "augment": True,
            "train_ratio": 0.9,
        },
    },
    "cnn": {
        # The defaults' light shifts, but longer, on more rows, with weight decay
        # (docs/results.md#where-the-defaults-come-from).
        "record": {
            "n_epochs": 40,
            "weight_decay": 1e-4,
            "train_ratio": 0.9,
        },
    },
}
# Training defaults that suit a model family better than the seed's (chosen on validation data).
MODEL_DEFAULTS: dict[str, dict] = {
    # Without the shifts and label smoothing the CNN overfits (docs/results.md#where-the-defaults-come-from).
    "cnn": {"n_epochs": 12, "lr": 3e-3, "lr_schedule": "onecycle", "label_smoothing": 0.1, "shift_px": 2.0},
    # Chosen on validation data, like the CNN's.
    "rnn": {"n_epochs": 12, "lr": 2e-3},
}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run, settled before it starts and never changed after (a value the
    run settles itself, such as a drawn seed, makes a new one with ``dataclasses.replace``). Each
    field's ``option`` is the one place its default, help text and bounds are written:
    ``mnist-train``'s flags, ``validate``, the resume rules, the estimators' parameters and the flags
    page are made from them. What the run finds out about itself is kept apart, in ``RunFacts``."""

    model_fn: str | None = option(None, "where to save the trained model file (required, except with --resume)",
                                  resumable=True)
    gpu_id: int = option(-1, "CUDA device index, -1 for the CPU", low=-1, resumable=True,
                         cli={"default": default_gpu_id})
    train_ratio: float = option(0.8, "share of the training set used for training; the rest validates",
                                low=0, high=1, low_open=True, high_open=True, estimator=True)
    # None (tables): chosen from the number of training rows (table_schedule).
    batch_size: int | None = option(256, "mini-batch size", low=1, estimator=True)
    n_epochs: int | None = option(20, "number of epochs", low=1, resumable=True, estimator=True)
    verbose: int = option(1, "0: only the result; 1: a line per epoch and, on a terminal, a progress bar", low=0,
                          resumable=True, estimator=True)
    seed: int | None = option(None, "random seed for a repeatable run (default: a random one, saved in the model "
                              "file)", low=0, high=2**63 - 1)
    lr: float = option(1e-3, "Adam's learning rate; the peak rate with onecycle", low=0, low_open=True,
                       estimator=True)
    lr_schedule: str = option("cosine", "cosine: decay the learning rate to 0 over the run; onecycle: warm up, then "
                              "decay; constant: the seed's fixed rate", choices=LR_SCHEDULES, estimator=True)
    weight_decay: float = option(0.0, "decoupled weight decay (AdamW); 0 is plain Adam", low=0, estimator=True)
    label_smoothing: float = option(0.0, "share of each target spread over all classes", low=0, high=1,
                                    high_open=True, estimator=True)
    grad_clip: float = option(0.0, "clip the gradients' total norm to this before each step; 0: never", low=0,
                              estimator=True)
    augment: bool = option(False, "distort training images (random affine and elastic) on every batch")
    hflip: bool = option(False, "mirror half the training images left-right (for clothes, not for digits)")
    shift_px: float = option(0.0, "shift training images by up to this many pixels (without --augment)", low=0)
    patience: int = option(0, "stop after this many epochs without a lower validation loss; 0: never", low=0,
                           estimator=True)
    compile: bool = option(False, "compile the training step with torch.compile (a few percent faster per epoch "
                           "on a CPU)")
    amp: str = option("auto", "bfloat16 mixed precision. auto: where this hardware runs this model faster (a timed "
                      "probe on GPUs and CPUs with bf16 kernels; fp32 elsewhere); on (also plain --amp); off: "
                      "float32, the seed's numerics. on and off repeat exactly", choices=AMP_CHOICES,
                      resumable=True, estimator=True, cli={"nargs": "?", "const": "on"})
    preset: str | None = option(None, "a named set of defaults for the model family (" + "; ".join(
        f"{model}: {', '.join(names)}" for model, names in PRESETS.items()) + "); flags given too still win")
    dataset: str = option("mnist", "mnist, fashion-mnist, digits, diabetes, csv:PATH, folder:PATH (a folder "
                          "of pictures, a subfolder per class) or text:PATH (a folder of .txt files per class, or a "
                          "CSV/TSV file of texts and labels)")
    task: str | None = option(None, "for csv:PATH: what the target is (default: from its values: text or a few "
                              "whole numbers are classes, numbers with fractions or many whole numbers regression; "
                              "the run says which; built-in sets know theirs)", choices=(CLASSIFICATION, REGRESSION))
    target: str | None = option(None, "for csv:PATH and text:PATH's tables: the target column (default: the last "
                                "one)", applies=("csv", "text"))
    text_column: str | None = option(None, "for text:PATH's tables: the column of texts (default: the one of long, "
                                     "mostly distinct cells)", applies="text", cli={"metavar": "NAME"})
    test_csv: str | None = option(None, "for csv:PATH: a separate test file (default: 20% of the file)",
                                  applies="csv")
    drop_na: bool = option(False, "for csv:PATH: drop the rows that have gaps (empty or NA cells) instead of "
                           "filling them", applies="csv")
    na_values: str | None = option(None, "for csv:PATH: comma-separated words that also mean a gap, in every "
                                   "column (default: empty cells, and pandas' NA words in number columns)",
                                   applies="csv", cli={"metavar": "WORDS"})
    text_columns: str | None = option(None, "for csv:PATH: comma-separated columns read as text even when they "
                                      "hold digits (zip codes, region codes)", applies="csv",
                                      cli={"metavar": "NAMES"})
    ignore_columns: str | None = option(None, "for csv:PATH: comma-separated columns left out (names, notes)",
                                        applies="csv", cli={"metavar": "NAMES"})
    decimal: str | None = reading_option("decimal", "for csv:PATH: ", applies="csv")
    encoding: str | None = reading_option("encoding", "for csv:PATH and text:PATH: ", applies=("csv", "text"))
    delimiter: str | None = reading_option("delimiter", "for csv:PATH and text:PATH: ", applies=("csv", "text"))
    loss: str | None = option(None, "nll for classification (the default); mse (default), l1 or huber for "
                              "regression", choices=("nll", *REGRESSION_LOSSES))
    image_size: int | None = option(None, "for folder:PATH: the side pictures are resized to (default: their "
                                    "median short side, at most 64)", low=1, high=1024, applies="folder")
    resize: str = option(CROP, "for folder:PATH: crop (scale the short side, keep the centre) or pad (fit the "
                         "long side, pad the rest)", choices=RESIZE_POLICIES, applies="folder")
    strict: bool = option(False, "for folder:PATH: refuse a folder with unreadable pictures instead of skipping "
                          "them", applies="folder")
    data_dir: str = option("data", "where downloaded datasets and the picture cache are kept", resumable=True)
    tensorboard: str | None = option(None, "also write TensorBoard event files (losses, accuracy, learning rate "
                                     "per epoch) into DIR; needs the tensorboard package", resumable=True,
                                     estimator=True, cli={"metavar": "DIR"})
    checkpoint_every: int = option(0, "write a resumable checkpoint every N epochs; 0: only when interrupted",
                                   low=0)
    checkpoint_fn: str | None = option(None, "where checkpoints go (default: MODEL_FN.ckpt)", resumable=True)
    resume: str | None = option(None, "continue the run saved in CHECKPOINT, with its configuration",
                                resumable=True, cli={"metavar": "CHECKPOINT"})
    # Distributed runs (torchrun): BatchNorm over the global batch; how long a collective waits for a
    # silent rank (about 11 days at most: far larger values overflow torch's timers).
    sync_bn: bool = option(False, "under torchrun: batch norm over the global batch instead of each process's "
                           "share")
    dist_timeout: float = option(DEFAULT_TIMEOUT_S, "under torchrun: seconds to wait for a silent process before "
                                 "the run stops", low=0, high=1e6, low_open=True, resumable=True)
    model: str = option("mlp", "the model family: " + ", ".join(MODELS) + " (the names after linear are "
                        "torchvision's architectures), or auto for tables: train linear and mlp and keep the one "
                        "with the lower validation loss", choices=(*MODELS, AUTO))
    pretrained: bool = option(False, "start --model (a torchvision architecture) from torchvision's published "
                              "ImageNet weights, kept in TORCH_HOME's cache (offline: a file placed there)")
    init_from: str | None = option(None, "start from another run's model file: tensors whose names and shapes "
                                   "match are loaded, a head for other classes is new", cli={"metavar": "MODEL_FN"})
    freeze: bool = option(False, "with --pretrained or --init_from: train only the head for the first "
                          "--freeze_epochs, then everything, the rest of the model at a tenth of --lr")
    freeze_epochs: int = option(1, "with --freeze: how many epochs only the head trains", low=1)
    # --model auto: the settings a family's defaults change for its candidate (flags given win), by family.
    family_settings: dict = field(default_factory=dict)
    class_weight: str | None = option(None, "balanced: weigh each class in the loss by rows / (classes x its rows), "
                                      "scikit-learn's rule, so that rare classes count as much as common ones",
                                      choices=("balanced",), estimator=True)
    sampler: str = option("shuffle", "shuffle: every training row once an epoch; balanced: draw rows with "
                          "replacement so that each class is drawn equally often", choices=SAMPLERS)
    # The model's own options (the family's Options dataclass); ``validate`` fills in the rest.
    model_options: dict = field(default_factory=dict)

    def validate(self) -> TrainConfig:
        """Refuse impossible values before any work starts: each field against its option, then the
        rules that tie fields together. Returns the configuration completed: the family's options
        filled in, input paths made absolute, a pretrained model's picture size."""
        if not self.model_fn and not self.resume:
            raise UserError("--model_fn is required (where to save the model), unless --resume is given")
        for name, opt in TRAIN_OPTIONS.items():
            value = getattr(self, name)
            if value is None and name in ("batch_size", "n_epochs") and not data_kind(self.dataset).sized_from_rows:
                # Only some kinds of data size these from their rows (a table's table_schedule).
                raise ParameterError(f"{name} must be a positive integer, got None")
            problem = opt.problem(value)
            if problem:
                raise ParameterError(problem)
        model_options = self._check_model_options()
        if self.amp not in AMP_CHOICES:
            raise ParameterError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {quoted(self.amp)}")
        self._check_table_words()
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '"\r\n'):
            raise UserError(f"--delimiter must be one character (not a quote or a line break), got "
                            f"{self.delimiter!r}; for a tab, pass --delimiter $'\\t' or --delimiter tab")
        prefix = source_prefix(self.dataset)
        given = [(name, opt.spec.applies) for name, opt in TRAIN_OPTIONS.items()
                 if not opt.spec.applies_to(prefix) and getattr(self, name) != opt.default]
        if given:
            applies = given[0][1] if isinstance(given[0][1], str) else " or ".join(given[0][1])
            raise UserError(f"--{given[0][0]} applies only to --dataset {applies.replace(' or', ':PATH or')}:PATH, "
                            f"not to {self.dataset}")
        self._check_starting_weights()
        return replace(self, model_options=model_options, image_size=self._image_size(), **self._input_paths())

    def _check_table_words(self) -> None:
        """--encoding names a codec Python has; the lists of names name something."""
        if self.encoding is not None:
            encoding_named(self.encoding)  # refused here, before any work, when Python has no such text codec
        for name in ("na_values", "text_columns", "ignore_columns"):
            value = getattr(self, name)
            if value is not None and not column_names(value):
                raise UserError(f"--{name} needs at least one comma-separated name, got {quoted(value)}")
        both = self.text_columns and self.ignore_columns and \
            set(column_names(self.text_columns)) & set(column_names(self.ignore_columns))
        if both:
            raise UserError(f"--text_columns and --ignore_columns both name {sorted(both)[0]!r}; choose one")

    def _check_starting_weights(self) -> None:
        """--pretrained, --init_from and --freeze, and the two ways of balancing classes."""
        if self.pretrained and not isinstance(MODELS.get(self.model), Family):
            raise UserError(f"--pretrained needs a torchvision architecture (--model {ARCHITECTURES[0]}, ...), not "
                            f"--model {self.model}; to start from one of your own runs, use --init_from MODEL_FN")
        if self.pretrained and self.init_from:
            raise UserError("--pretrained and --init_from both give the starting weights; choose one")
        if self.freeze and not (self.pretrained or self.init_from):
            raise UserError("--freeze trains only a new head on weights that exist: add --pretrained or --init_from")
        if self.freeze_epochs != 1 and not self.freeze:
            raise UserError("--freeze_epochs applies only with --freeze")
        if self.class_weight and self.sampler != "shuffle":
            raise UserError("--class_weight balanced and --sampler balanced both correct for rare classes; choose one")

    def _image_size(self) -> int | None:
        resized = TRAIN_OPTIONS["image_size"].spec.applies == source_prefix(self.dataset)
        if self.pretrained and resized and self.image_size is None:
            # The size the published weights were trained at (224 for most): their features are of that scale.
            return pretrained_side(self.model)
        return self.image_size

    def _check_model_options(self) -> dict:
        """The family's options: what was given, its defaults for the rest, each checked."""
        if self.model == AUTO and not auto_families(self):
            offered = next(kind.auto_families for kind in KINDS.values() if kind.auto_families)
            raise UserError(f"--model auto chooses between {' and '.join(offered)} for tables; {self.dataset} is not "
                            "one: give a family, e.g. --model mlp or cnn")
        options = MODELS[auto_families(self)[-1] if self.model == AUTO else self.model].Options
        known = options_of(options)
        unknown = sorted(set(self.model_options) - set(known))
        if unknown:
            takes = f"its options: {', '.join('--' + name for name in known)}" if known else "it has no options"
            raise UserError(f"--{unknown[0]} does not apply to --model {self.model} ({takes})")
        filled = {name: self.model_options.get(name, opt.default) for name, opt in known.items()}
        problem = check_options(options, filled)
        if problem:
            raise ParameterError(problem)
        return filled

    def _input_paths(self) -> dict:
        """Input paths made absolute: the model file and checkpoint keep working from another folder."""
        paths = {"data_dir": str(Path(self.data_dir).resolve())}
        path = source_path(self.dataset)
        if path:
            paths["dataset"] = with_path(self.dataset, str(Path(path).resolve()))
        if self.init_from:
            paths["init_from"] = str(Path(self.init_from).resolve())
        if self.test_csv:
            paths["test_csv"] = str(Path(self.test_csv).resolve())
            if source_path(paths.get("dataset", self.dataset)) == paths["test_csv"]:
                raise UserError(f"--test_csv {paths['test_csv']} is the training file itself; test rows must be "
                                "others")
        return paths

    def to_dict(self) -> dict:
        """Plain Python values, safe for ``torch.load(weights_only=True)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Rebuild from ``to_dict()`` (or a saved record, its run facts among the settings), ignoring
        keys that a newer or older version added."""
        known = {f.name for f in fields(cls)}
        settings = {k: v for k, v in values.items() if k in known}
        if isinstance(values.get("amp"), bool):
            # Releases before --amp auto: a switch (what it chose is in RunFacts.from_dict).
            settings["amp"] = "on" if values["amp"] else "off"
        if "model" not in values:
            # Release 1 had only the MLP, its options among the other flags.
            settings["model_options"] = {k: values[k] for k in options_of(MODELS["mlp"].Options)
                                         if values.get(k) is not None}
        return cls(**settings)


@dataclass
class RunFacts:
    """What a run finds out about itself as it goes, apart from what it was asked (``TrainConfig``):
    saved beside the configuration, read back by ``--resume`` (which continues as the run began) and
    left out by ``--config`` (a replay finds its own)."""

    # What the run computes in, once chosen (precision.py), and why.
    precision: str | None = None
    precision_reason: str | None = None
    # How many processes trained: a resume on another number regroups the batch or is refused.
    world_size: int = 1
    # The parameters --freeze left trainable, once chosen: a resumed run freezes the same.
    freeze_head: list[str] | None = None

    def check(self, amp: str) -> RunFacts:
        """Refuse facts a damaged or hand-edited file could hold, or that contradict ``amp``."""
        # bool is an int to Python: True must not pass for 1.
        if isinstance(self.world_size, bool) or not (isinstance(self.world_size, int) and self.world_size >= 1):
            raise UserError(f"the number of processes must be a positive integer, got {quoted(self.world_size)}")
        if self.precision not in (None, BFLOAT16, FLOAT32):
            raise UserError(f"the precision must be {BFLOAT16} or {FLOAT32}, got {quoted(self.precision)}")
        reason = self.precision_reason
        if reason is not None and not (isinstance(reason, str) and len(reason) <= 200 and reason.isprintable()):
            raise UserError("the recorded reason for the precision must be one line of printable text")
        forced = {"on": BFLOAT16, "off": FLOAT32}.get(amp)
        if forced and self.precision not in (None, forced):
            raise UserError(f"--amp {amp} contradicts the recorded precision {self.precision}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunFacts:
        """The facts in a saved record (a model file's or checkpoint's ``config``)."""
        facts = cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
        if isinstance(values.get("amp"), bool):  # releases before --amp auto: the switch was the precision
            facts.precision = BFLOAT16 if values["amp"] else FLOAT32
        return facts


FACTS = tuple(f.name for f in fields(RunFacts))


def saved_record(config: TrainConfig, facts: RunFacts) -> dict:
    """What a model file, checkpoint and ``MODEL.config.json`` hold: the settings and, beside them, the
    run's facts (one flat dict, as every release has written it)."""
    return config.to_dict() | facts.to_dict()


def from_record(values: dict) -> tuple[TrainConfig, RunFacts]:
    """A saved record's configuration and facts, each checked as flags are."""
    config = TrainConfig.from_dict(values).validate()
    return config, RunFacts.from_dict(values).check(config.amp)



TRAIN_OPTIONS = options_of(TrainConfig)
MODEL_OPTION_NAMES = frozenset(model_options())  # every family's, by name
# What may change when a run is resumed; everything else is the checkpoint's. A longer run needs a
# fixed learning rate: a cosine or one-cycle schedule was planned for the original length.
RESUMABLE = tuple(name for name, opt in TRAIN_OPTIONS.items() if opt.spec.resumable)
# Settings chosen per model family or kind of data: left to None, an estimator takes the same choice.
CHOSEN_PER_MODEL = frozenset().union(*MODEL_DEFAULTS.values(), *(
    kind.defaults(model) for kind in KINDS.values() for model in (*MODELS, AUTO)))


def auto_families(config: TrainConfig) -> tuple[str, ...]:
    """The families --model auto chooses between for this configuration's data (a table's by default)."""
    return data_kind(config.dataset).auto_families


def family_candidates(config: TrainConfig) -> list[TrainConfig]:
    """The configuration of each family a run trains: ``config`` itself, or for --model auto one per
    family its kind of data names (each with its own options: auto's are the MLP's); with --init_from,
    the model file's family alone."""
    if config.model != AUTO:
        return [config]
    families = auto_families(config)
    if config.init_from:  # a start from a model file trains that file's family
        family = family_of(config.init_from)
        family = family if family in families else families[-1]
        return [_candidate(config, family, config.tensorboard)]
    return [_candidate(config, family, str(Path(config.tensorboard) / family) if config.tensorboard else None)
            for family in families]


def _candidate(config: TrainConfig, family: str, tensorboard: str | None) -> TrainConfig:
    return replace(config, model=family, model_options=config.model_options if family == "mlp" else {},
                   tensorboard=tensorboard, family_settings={}, **config.family_settings.get(family, {}))


def source_options(config: TrainConfig) -> dict:
    """The options of ``config`` that its ``--dataset PREFIX:PATH``'s reader takes (``applies=PREFIX``,
    and what its kind adds, such as a table's task)."""
    prefix = source_prefix(config.dataset)
    options = {name: getattr(config, name) for name, opt in TRAIN_OPTIONS.items()
               if prefix and opt.spec.applies is not None and opt.spec.applies_to(prefix)}
    return options | data_kind(config.dataset).reader_options(config)


def resolve(given: dict, replayed: dict | None = None, kind: type[Kind] | None = None,
            model_options: dict | None = None) -> TrainConfig:
    """The one resolver, for the command line and the estimators alike: a ``TrainConfig`` of the
    settings ``given``, over ``replayed`` ones (a ``--config`` file's), over the defaults of the model
    family, the kind of data (``kind``, else the one ``dataset`` names) and a preset. Settings are
    flat names and values, the model's options among them; ``model_options`` (an estimator's dict)
    come under ``given``'s and are checked against the family's. Validation is the caller's next step."""
    replayed, model_options = replayed or {}, model_options or {}
    given = {**{k: v for k, v in model_options.items() if k in MODEL_OPTION_NAMES}, **given}
    chosen = {**replayed, **given}
    for name in ("model", "dataset", "preset"):  # needed before validation: to find the defaults
        if chosen.get(name) is not None and not isinstance(chosen[name], str):
            raise ParameterError(f"{name} must be a word, got {quoted(chosen[name])}")
    kind = kind or data_kind(chosen.get("dataset") or TRAIN_OPTIONS["dataset"].default)
    model = chosen.get("model") or kind.default_model  # tables: auto, linear or mlp, whichever fits
    defaults = defaults_for(model, kind, chosen.get("preset"))
    if "n_layers" in given and "hidden_sizes" not in given:  # an explicit depth beats a preset's or file's sizes
        defaults.pop("hidden_sizes", None)
        replayed = {k: v for k, v in replayed.items() if k != "hidden_sizes"}
    values = {"model": model, **defaults, **replayed, **given}
    options = {name: values.pop(name) for name in list(values) if name in MODEL_OPTION_NAMES}
    options |= {k: v for k, v in model_options.items() if k not in MODEL_OPTION_NAMES}  # refused by validate
    options = {name: value for name, value in options.items() if value is not None}
    unknown = sorted(set(values) - set(TRAIN_OPTIONS))
    if unknown:
        raise UserError(f"unknown setting {unknown[0]!r} (see --help for the flags)")
    family_settings = _family_settings(kind, {**replayed, **given}) if model == AUTO else {}
    return TrainConfig(**values, model_options=options, family_settings=family_settings)


def _family_settings(kind, chosen: dict) -> dict:
    """--model auto: each family's own defaults on this kind of data (a table's linear model has its
    own learning rate), where no flag or file chose the setting."""
    auto = defaults_for(AUTO, kind)
    return {family: {k: v for k, v in defaults_for(family, kind).items() if auto.get(k, ...) != v and k not in chosen}
            for family in kind.auto_families}


def defaults_for(model: str, kind, preset: str | None = None) -> dict:
    """The defaults that beat ``TrainConfig``'s for this model family and kind of data (a
    ``kinds.Kind``): the family's own, the kind's, and a preset's, in that order. Model options may be
    among them."""
    defaults = dict(MODEL_DEFAULTS.get(model, {})) | kind.defaults(model)
    if preset:
        presets = PRESETS.get(model, {})
        if preset not in presets:
            raise UserError(f"--preset {preset}: there is none for --model {model} (presets: "
                            f"{', '.join(presets) or 'none'})")
        defaults.update(presets[preset])
    return defaults
