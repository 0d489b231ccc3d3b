"""scikit-learn estimators around this project's models and Trainer: ``Classifier`` and ``Regressor``.

    from mnist_classifier import Classifier
    clf = Classifier(random_state=0).fit(X_train, y_train)   # numpy arrays, DataFrames, images
    clf.score(X_test, y_test); clf.predict_proba(X_test); clf.history_[-1]
    clf.save("model.pth")                                     # a normal model file
    Classifier.load("model.pth").predict(X_test)              # any model file, as an estimator

``fit`` does what ``mnist-train`` does in memory: it holds back ``1 - train_ratio`` of the rows for
validation, fits the preprocessing record on the training rows alone (text columns of a
DataFrame become one-hot slots as for CSV files), trains with the same defaults (the table
defaults for rows, the model family's for images), and keeps the best epoch by validation loss.
Arrays must be numbers; only a DataFrame may hold text columns. Arrays of 3 or 4 dimensions
(N, H, W) or (N, C, H, W) are images with pixels in [0, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .data import preprocessing, tables
from .data.preprocessing import CLASSIFICATION, REGRESSION
from .errors import UserError
from .inference.model_file import load_model, save_model_file
from .training.build import build_trainer
from .training.callbacks import EpochPrinter
from .training.config import MODEL_DEFAULTS, TABLE_DEFAULTS, TrainConfig, table_schedule
from .training.run_log import TensorBoardLog, companion_paths, write_config, write_history


class _Estimator(BaseEstimator):
    """What both estimators share; ``_task`` says which they are."""

    _task = CLASSIFICATION

    def __init__(self, model="mlp", hidden_sizes=None, n_layers=None, use_dropout=None, dropout_p=None,
                 model_options=None, n_epochs=None, batch_size=None, lr=None, lr_schedule=None,
                 weight_decay=None, label_smoothing=None, train_ratio=0.8, patience=0, amp="auto",
                 random_state=None, verbose=0, tensorboard=None):
        # scikit-learn's rule: store the arguments as given; fit() checks them.
        self.model = model
        self.hidden_sizes = hidden_sizes
        self.n_layers = n_layers
        self.use_dropout = use_dropout
        self.dropout_p = dropout_p
        self.model_options = model_options
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.train_ratio = train_ratio
        self.patience = patience
        self.amp = amp
        self.random_state = random_state
        self.verbose = verbose
        self.tensorboard = tensorboard

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, X, y):
        """Train on ``X`` and ``y``; the best epoch's weights by validation loss are kept."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X, y = self._check_input(X, y, reset=True)
        if len(y) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples to hold one back for validation; "
                             f"got {len(y)} sample")
        targets = self._encode_targets(y)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
            torch.manual_seed(seed)
            try:
                self._train(X, targets, seed)
            except UserError as e:
                raise ValueError(str(e)) from e
        return self

    def _train(self, X, targets: torch.Tensor, seed: int) -> None:
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
        n_train = min(max(int(len(targets) * self.train_ratio), 1), len(targets) - 1)  # both parts non-empty
        train_rows, valid_rows = order[:n_train], order[n_train:]
        record = self._fit_record(X, targets, train_rows)
        x = preprocessing.to_model_input(record, X, "X")
        y = preprocessing.to_model_target(record, targets)
        config = self._config(record, len(train_rows), seed)
        input_shape = preprocessing.input_shape(record)
        callbacks = [EpochPrinter()] if self.verbose else []
        if self.tensorboard:
            callbacks.append(TensorBoardLog(self.tensorboard, config))
        trainer = build_trainer(config, input_shape, self._output_size(), len(train_rows), torch.device("cpu"),
                                self._task, callbacks=callbacks)
        trainer.train((x[train_rows], y[train_rows]), (x[valid_rows], y[valid_rows]), config.n_epochs,
                      config.batch_size)
        trainer.model.load_state_dict(trainer.best_state)
        self.model_ = trainer.model.eval()
        self.optimizer_ = trainer.optimizer
        self.record_ = record
        self.config_ = config.to_dict()
        self.history_ = trainer.history
        self.best_epoch_ = trainer.best_epoch

    def _fit_record(self, X, targets: torch.Tensor, train_rows: torch.Tensor) -> dict:
        if isinstance(X, torch.Tensor):  # images
            return preprocessing.image_record(tuple(X.shape[1:]))
        y = targets[train_rows] if self._task == REGRESSION else None
        return preprocessing.fit_table(X.iloc[train_rows.numpy()], y)

    def _config(self, record: dict, n_train: int, seed: int) -> TrainConfig:
        """This estimator's parameters as the command line's configuration, defaults filled in alike."""
        is_table = record["kind"] == preprocessing.TABLE
        defaults = dict(MODEL_DEFAULTS.get(self.model, {}))
        if is_table and self.model == "mlp":
            defaults.update(TABLE_DEFAULTS)
        # None: the command line's default for this model family and data, as mnist-train would use.
        plain = {"n_epochs": None, "batch_size": None, "weight_decay": 0.0, "lr": 1e-3, "lr_schedule": "cosine",
                 "label_smoothing": 0.0}
        values = {name: getattr(self, name) if getattr(self, name) is not None else defaults.get(name, default)
                  for name, default in plain.items()}
        batch = values["batch_size"] or (None if is_table else min(256, n_train))
        if is_table:
            batch, epochs = table_schedule(n_train, batch)
        else:
            epochs = values["n_epochs"] or 20
        options = dict(self.model_options or {})
        for name in ("hidden_sizes", "n_layers", "use_dropout", "dropout_p"):
            value = getattr(self, name)
            if value is None and self.model == "mlp" and is_table:
                value = TABLE_DEFAULTS.get(name)
            if value is not None:
                options[name] = list(value) if name == "hidden_sizes" else value
        config = TrainConfig(model_fn="(in memory)", model=self.model, model_options=options, seed=seed,
                             n_epochs=values["n_epochs"] or epochs, batch_size=min(batch, n_train), lr=values["lr"],
                             lr_schedule=values["lr_schedule"], weight_decay=values["weight_decay"],
                             label_smoothing=values["label_smoothing"], train_ratio=self.train_ratio,
                             patience=self.patience, amp=self.amp, verbose=self.verbose, gpu_id=-1,
                             task=self._task, dataset="estimator", tensorboard=self.tensorboard)
        config.validate()
        return config

    # --- input -------------------------------------------------------------------------------------

    def _check_input(self, X, y=None, reset: bool = False):
        """X as a DataFrame of raw columns (tables) or a float tensor (images), checked as scikit-learn
        checks input; y as a 1-D array."""
        if isinstance(X, pd.DataFrame) and any(tables.is_text(X[name]) for name in X.columns):
            # Text columns: scikit-learn's numeric checks would refuse them; the table record reads them.
            X = validate_data(self, X, reset=reset, skip_check_array=True)
            if y is not None:
                y = column_or_1d(np.asarray(y), warn=True)
                if len(y) != len(X):
                    raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
            return X, y
        kwargs = {"dtype": "numeric", "allow_nd": True, "ensure_min_features": 1}
        if y is None:
            X = validate_data(self, X, reset=reset, **kwargs)
        else:
            X, y = validate_data(self, X, y, reset=reset, y_numeric=self._task == REGRESSION, **kwargs)
        if X.ndim >= 3:
            return torch.as_tensor(X, dtype=torch.float32).reshape(len(X), -1, *X.shape[-2:]), y
        names = getattr(self, "feature_names_in_", None)
        columns = list(names) if names is not None else [f"x{i}" for i in range(X.shape[1])]
        return pd.DataFrame(np.asarray(X, dtype=np.float64), columns=columns), y

    def _prepared(self, X) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X, _ = self._check_input(X, reset=False)
        try:
            return preprocessing.to_model_input(self.record_, X, "X")
        except UserError as e:
            raise ValueError(str(e)) from e

    def _output(self, X) -> torch.Tensor:
        """The model's output in float64: a row's answer must not depend on the rows beside it (float32
        matrix products round differently for different batch sizes)."""
        x = self._prepared(X).double()
        state = {name: value.double() if value.is_floating_point() else value
                 for name, value in [*self.model_.named_parameters(), *self.model_.named_buffers()]}
        with torch.inference_mode():
            chunks = [torch.func.functional_call(self.model_, state, (chunk,)) for chunk in x.split(4096)]
        return torch.cat(chunks) if chunks else torch.zeros(0, self._output_size(), dtype=torch.float64)

    # --- files -------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """A normal model file (``mnist-predict``, ``Predictor`` and ``mnist-export`` read it), with the
        history CSV and configuration JSON beside it as a training run leaves them."""
        check_is_fitted(self, "model_")
        classes = [str(c) for c in self.classes_] if self._task == CLASSIFICATION else None
        metadata = {"name": "estimator", "task": self._task, "input_shape": list(preprocessing.input_shape(
            self.record_)), "classes": classes, "feature_names": self.record_.get("feature_names")}
        extra = {"estimator": {"classes": self.classes_.tolist()}} if self._task == CLASSIFICATION else {}
        save_model_file(path, self.model_, self.optimizer_, self.config_, preprocessing=self.record_,
                        dataset=metadata, classes=classes, history=self.history_, best_epoch=self.best_epoch_,
                        **extra)
        paths = companion_paths(path)
        write_history(paths["history"], self.history_)
        write_config(paths["config"], self.config_)

    @classmethod
    def load(cls, path: str | Path):
        """Any model file, as a fitted estimator of this kind (its parameters from the file's configuration)."""
        try:
            model, saved = load_model(path)
        except UserError as e:
            raise ValueError(str(e)) from e
        task = saved["dataset"].get("task", CLASSIFICATION)
        if task != cls._task:
            other = "Regressor" if task == REGRESSION else "Classifier"
            raise ValueError(f"{path}: a {task} model; load it with {other}.load")
        config = saved.get("config") or {}
        known = cls._get_param_names()
        estimator = cls(**{name: config[name] for name in known if name in config and name != "model_options"},
                        model_options=config.get("model_options"))
        estimator.model_, estimator.record_ = model.eval(), saved["preprocessing"]
        estimator.optimizer_, estimator.config_ = None, config
        estimator.history_, estimator.best_epoch_ = saved.get("history", []), saved.get("best_epoch")
        record = estimator.record_
        if record["kind"] == preprocessing.TABLE:
            names = [spec["name"] for spec in preprocessing.table_columns(record)]
            estimator.n_features_in_ = len(names)
            if record.get("feature_names") and "columns" in record:
                estimator.feature_names_in_ = np.array(names, dtype=object)
        else:
            estimator.n_features_in_ = math.prod(record["shape"])
        if cls._task == CLASSIFICATION:
            estimator.classes_ = np.array(saved.get("estimator", {}).get("classes") or saved["dataset"]["classes"])
        return estimator


class Classifier(ClassifierMixin, _Estimator):
    """A scikit-learn classifier: this project's model (``model="mlp"``, ``"cnn"`` or ``"rnn"``)
    trained by its Trainer on NLLLoss of log-probabilities."""

    _task = CLASSIFICATION

    def _encode_targets(self, y) -> torch.Tensor:
        check_classification_targets(y)
        self.classes_, indices = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"Classifier needs samples of at least 2 classes; got 1 class ({self.classes_[0]!r})")
        return torch.as_tensor(indices.reshape(-1), dtype=torch.long)

    def _output_size(self) -> int:
        return len(self.classes_)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, one column per class of ``classes_``."""
        return self._output(X).exp().numpy()

    def predict_log_proba(self, X) -> np.ndarray:
        return self._output(X).numpy()

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.classes_[self._output(X).argmax(dim=1).numpy()]


class Regressor(RegressorMixin, _Estimator):
    """A scikit-learn regressor: this project's model with one output, MSE on standardised targets."""

    _task = REGRESSION

    def _encode_targets(self, y) -> torch.Tensor:
        # torch.tensor copies: y may be a read-only memory map.
        return torch.tensor(np.asarray(y, dtype=np.float64), dtype=torch.float32).reshape(-1, 1)

    def _output_size(self) -> int:
        return 1

    def predict(self, X) -> np.ndarray:
        output = self._output(X).squeeze(-1)
        return (output * self.record_["y_std"] + self.record_["y_mean"]).numpy()  # in float64, in y's units
