"""The training configuration: one typed object, built from the flags, saved as plain values."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import UserError
from ..models import MODELS
from .precision import AMP_CHOICES, BFLOAT16, FLOAT32

LR_SCHEDULES = ("cosine", "onecycle", "constant")
CSV_ONLY = ("target", "test_csv", "drop_na", "delimiter")  # flags that mean something only for your own CSV

# Named sets of defaults for each model; flags given with a preset still win. Model options
# (e.g. hidden_sizes) may appear beside the training flags.
PRESETS = {
    "mlp": {
        # The shortest time to >= 98% test accuracy (README, "Speed"): chosen on validation data by
        # benchmarks/search_fast.py, the fastest recipe that reached 98.3% validation accuracy on
        # three seeds (98.37-98.53%, 4.6 s of training on 2 CPU cores).
        "fast": {
            "hidden_sizes": [256, 256],
            "n_epochs": 4,
            "lr": 3e-3,
            "lr_schedule": "onecycle",
            "label_smoothing": 0.1,
            "train_ratio": 0.9,
        },
        # The accuracy record for a plain MLP of the seed's blocks (README, "Results"): wide blocks,
        # distorted training images, one-cycle AdamW, label smoothing; 15 minutes on 2 CPU cores
        # with bfloat16 kernels (which --amp auto picks there).
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
        # Wider stages, the MLP record's distortions and 22 epochs: 14.5 minutes on 2 CPU cores for
        # 99.46% (seed 0), below the defaults' 99.55%: the strong distortions do not pay in 22 epochs.
        "record": {
            "channels": [32, 64, 128],
            "hidden_sizes": [256],
            "n_epochs": 22,
            "lr": 3e-3,
            "lr_schedule": "onecycle",
            "weight_decay": 1e-4,
            "label_smoothing": 0.1,
            "augment": True,
            "shift_px": 0.0,
            "train_ratio": 0.9,
        },
    },
    "rnn": {},
}
# Training defaults that suit a model family better than the seed's (chosen on validation data).
MODEL_DEFAULTS: dict[str, dict] = {
    "mlp": {},
    # Tried on validation data (seed 1): 99.6% valid after 12 epochs, 2.5 minutes on 2 CPU cores;
    # without the shifts and label smoothing, 99.15% and overfitted (training loss 1e-3).
    "cnn": {"n_epochs": 12, "lr": 3e-3, "lr_schedule": "onecycle", "label_smoothing": 0.1, "shift_px": 2.0},
    # Tried on validation data (seed 1): 99.07% valid after 12 epochs, 4.5 minutes on 2 CPU cores.
    "rnn": {"n_epochs": 12, "lr": 2e-3},
}


# Defaults for tables (--dataset csv:PATH, diabetes) with the MLP: the seed's size rule builds
# 8-7-6-5-4-1 for 8 columns, far too small. Chosen on validation data by benchmarks/search_tables.py
# (README, "Tables"). None: sized from the number of training rows by ``table_schedule``.
TABLE_DEFAULTS = {"hidden_sizes": [256, 256], "use_dropout": True, "dropout_p": 0.1, "weight_decay": 1e-4,
                  "batch_size": None, "n_epochs": None}
TABLE_DATASETS = ("diabetes",)  # besides csv:PATH
TABLE_STEPS = 2000  # optimizer steps a table run aims at, whatever its size
TABLE_BATCH = (16, 256)  # the smallest and largest table batch size
TABLE_EPOCHS = (20, 500)


def is_table(dataset: str) -> bool:
    return dataset.startswith("csv:") or dataset in TABLE_DATASETS


def table_schedule(n_train: int, batch: int | None = None) -> tuple[int, int]:
    """Batch size (unless given) and epochs for ``n_train`` table rows: about 32 batches an epoch (a
    power of two between 16 and 256, never more than the rows), and epochs enough for about
    ``TABLE_STEPS`` steps (20 to 500)."""
    low, high = TABLE_BATCH
    batch = batch or int(min(max(2 ** round(math.log2(max(n_train, 1) / 32)), low), high, max(n_train, 1)))
    steps_per_epoch = max(n_train // batch, 1)
    epochs = int(min(max(round(TABLE_STEPS / steps_per_epoch), TABLE_EPOCHS[0]), TABLE_EPOCHS[1]))
    return batch, epochs


def resolve_options(model: str, given: dict) -> dict:
    """The model's options: what was given, the model's defaults for the rest."""
    options = MODELS[model].OPTIONS
    unknown = sorted(set(given) - set(options))
    if unknown:
        raise UserError(f"--{unknown[0]} does not apply to --model {model} (its options: "
                        f"{', '.join('--' + name for name in options)})")
    return {name: given.get(name, option.default) for name, option in options.items()}


@dataclass
class TrainConfig:
    model_fn: str | None = None
    gpu_id: int = -1
    train_ratio: float = 0.8
    batch_size: int | None = 256  # None (tables): chosen from the number of training rows
    n_epochs: int | None = 20
    verbose: int = 1
    seed: int | None = None
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = False
    hflip: bool = False
    shift_px: float = 0.0
    patience: int = 0
    compile: bool = False
    amp: str = "auto"  # AMP_CHOICES
    # What the run computes in, once chosen (precision.py): saved, so a resumed run keeps it.
    precision: str | None = None
    precision_reason: str | None = None
    preset: str | None = None
    dataset: str = "mnist"
    task: str | None = None
    target: str | None = None
    test_csv: str | None = None
    drop_na: bool = False
    delimiter: str | None = None  # None: sniffed from the file
    loss: str | None = None
    data_dir: str = "data"
    tensorboard: str | None = None  # a folder for TensorBoard event files
    checkpoint_every: int = 0
    checkpoint_fn: str | None = None
    resume: str | None = None
    # Distributed runs (torchrun): BatchNorm over the global batch; how long a collective waits for a
    # silent rank; how many processes trained (saved, so a resume is refused on another number).
    sync_bn: bool = False
    dist_timeout: float = 120.0
    world_size: int = 1
    model: str = "mlp"
    # The model's own options (``models/<model>.py`` OPTIONS); ``validate`` fills in the rest.
    model_options: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Refuse impossible values before any work starts."""
        values = {f.name: getattr(self, f.name) for f in fields(self)} | dict(self.model_options)
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"--{name} must be a finite number, got {value}")
        if not self.model_fn and not self.resume:
            raise UserError("--model_fn is required (where to save the model), unless --resume is given")
        if not 0 < self.train_ratio < 1:
            raise UserError(f"--train_ratio must be between 0 and 1 (exclusive), got {self.train_ratio}")
        if self.model not in MODELS:
            raise UserError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        self.model_options = resolve_options(self.model, self.model_options)
        for name, option in MODELS[self.model].OPTIONS.items():
            problem = option.problem(name, self.model_options[name])
            if problem:
                raise UserError(problem)
        for name in ("batch_size", "n_epochs"):
            if getattr(self, name) is None and is_table(self.dataset):
                continue  # sized once the rows are known: table_schedule
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UserError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        if min(self.weight_decay, self.patience, self.checkpoint_every, self.shift_px) < 0:
            raise UserError("--weight_decay, --patience, --checkpoint_every and --shift_px must not be negative")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 < self.dist_timeout <= 1e6:  # about 11 days; far larger values overflow torch's timers
            raise UserError(f"--dist_timeout must be a number of seconds above 0 and at most 1e6, got "
                            f"{self.dist_timeout}")
        if not (isinstance(self.world_size, int) and self.world_size >= 1):
            raise UserError(f"the number of processes must be a positive integer, got {self.world_size!r}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        self._check_precision()
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"--lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise UserError(f"--seed must be between 0 and 2**63 - 1, got {self.seed}")
        if self.verbose < 0:
            raise UserError(f"--verbose must be 0 or more, got {self.verbose}")
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '"\r\n'):
            raise UserError(f"--delimiter must be one character (not a quote or a line break), got "
                            f"{self.delimiter!r}; for a tab, pass --delimiter $'\\t' or --delimiter tab")
        csv_only = [name for name in CSV_ONLY if getattr(self, name)]
        if csv_only and not self.dataset.startswith("csv:"):
            raise UserError(f"--{csv_only[0]} applies only to --dataset csv:PATH, not to {self.dataset}")
        self.resolve_input_paths()

    def _check_precision(self) -> None:
        if self.amp not in AMP_CHOICES:
            raise UserError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {self.amp!r}")
        if self.precision not in (None, BFLOAT16, FLOAT32):
            raise UserError(f"the precision must be {BFLOAT16} or {FLOAT32}, got {self.precision!r}")
        reason = self.precision_reason
        if reason is not None and not (isinstance(reason, str) and len(reason) <= 200 and reason.isprintable()):
            raise UserError("the recorded reason for the precision must be one line of printable text")
        forced = {"on": BFLOAT16, "off": FLOAT32}.get(self.amp)
        if forced and self.precision not in (None, forced):
            raise UserError(f"--amp {self.amp} contradicts the recorded precision {self.precision}")

    def resolve_input_paths(self) -> None:
        """Input paths made absolute: the model file and checkpoint keep working from another folder."""
        self.data_dir = str(Path(self.data_dir).resolve())
        if self.dataset.startswith("csv:") and self.dataset[4:]:
            self.dataset = "csv:" + str(Path(self.dataset[4:]).resolve())
        if self.test_csv:
            self.test_csv = str(Path(self.test_csv).resolve())
            if self.dataset == f"csv:{self.test_csv}":
                raise UserError(f"--test_csv {self.test_csv} is the training file itself; test rows must be others")

    def to_dict(self) -> dict:
        """Plain Python values, safe for ``torch.load(weights_only=True)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Rebuild from ``to_dict()``, ignoring keys that a newer or older version added."""
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in values.items() if k in known})
        if isinstance(values.get("amp"), bool):
            # Releases before --amp auto: a switch, and what it chose was the only precision.
            config.amp = "on" if values["amp"] else "off"
            config.precision = BFLOAT16 if values["amp"] else FLOAT32
        if "model" not in values:
            # Release 1 had only the MLP, its options among the other flags.
            config.model_options = {k: values[k] for k in MODELS["mlp"].OPTIONS if values.get(k) is not None}
        return config
