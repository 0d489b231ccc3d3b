"""The training configuration: one typed object, built from the flags, saved as plain values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .errors import UserError

LR_SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    model_fn: str
    gpu_id: int = -1
    train_ratio: float = 0.8
    batch_size: int = 256
    n_epochs: int = 20
    n_layers: int = 5
    use_dropout: bool = False
    dropout_p: float = 0.3
    verbose: int = 1
    seed: int | None = None
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    data_dir: str = "data"

    def validate(self) -> None:
        """Refuse impossible values before any work starts."""
        if not 0 < self.train_ratio < 1:
            raise UserError(f"--train_ratio must be between 0 and 1 (exclusive), got {self.train_ratio}")
        for name in ("batch_size", "n_epochs", "n_layers"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.dropout_p < 1:
            raise UserError(f"--dropout_p must be in [0, 1), got {self.dropout_p}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"--lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.verbose < 0:
            raise UserError(f"--verbose must be 0 or more, got {self.verbose}")

    def to_dict(self) -> dict:
        """Plain Python values, safe for ``torch.load(weights_only=True)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Rebuild from ``to_dict()``, ignoring keys that a newer or older version added."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
