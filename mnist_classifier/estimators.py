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

import inspect
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from .data import preprocessing, tables
from .data.dataset import take_rows
from .data.preprocessing import CLASSIFICATION, REGRESSION
from .errors import UserError
from .files import companion_paths
from .inference.model_file import load_model, save_model_file
from .kinds import as_record
from .training.build import build_trainer
from .training.callbacks import EpochPrinter
from .training.config import CHOSEN_PER_MODEL, ESTIMATOR, TRAIN_OPTIONS, RunFacts, TrainConfig, resolve, saved_record
from .training.outputs import check_outputs
from .training.run_log import TensorBoardLog, write_config, write_history

# The estimators' parameters: the model's, then every training option marked ``estimator`` in
# ``TrainConfig`` (so a new one is a parameter here too). None means what ``mnist-train`` would
# choose for this model family and data; the others default as the command line does, but quietly.
MODEL_PARAMETERS = {"model": "mlp", "hidden_sizes": None, "n_layers": None, "use_dropout": None, "dropout_p": None,
                    "model_options": None}
TRAINING_PARAMETERS = {name: None if name in CHOSEN_PER_MODEL else opt.default
                       for name, opt in TRAIN_OPTIONS.items() if opt.spec.estimator} | {"verbose": 0}
PARAMETERS = {**MODEL_PARAMETERS, **TRAINING_PARAMETERS, "random_state": None}


class EstimatorError(UserError, ValueError):
    """A mistake in what an estimator was given (a parameter, a file): a ``UserError``, and the
    ``ValueError`` scikit-learn's conventions expect."""


class _Estimator(BaseEstimator):
    """What both estimators share; ``_task`` says which they are. Their parameters are ``PARAMETERS``."""

    _task = CLASSIFICATION

    def __init__(self, **params):
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}")
        # scikit-learn's rule: store the arguments as given; fit() checks them.
        for name, default in PARAMETERS.items():
            setattr(self, name, params.get(name, default))

    # scikit-learn reads the parameters' names and defaults from the signature.
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
           for name, default in PARAMETERS.items()])

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, X, y):
        """Train on ``X`` and ``y``; the best epoch's weights by validation loss are kept. A fit that
        fails (or is interrupted) leaves the estimator as it was: fitted as before, or unfitted."""
        before = _fitted_attributes(self)
        try:
            return self._fit(X, y)
        except BaseException:
            # The checks set attributes as they go (n_features_in_, classes_): none of a failed fit's
            # may stay beside the old model.
            for name in _fitted_attributes(self):
                delattr(self, name)
            vars(self).update(before)
            raise

    def _fit(self, X, y):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        ratio = _plain(self.train_ratio)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
            raise ValueError(f"train_ratio must be a number between 0 and 1 (exclusive), got {self.train_ratio!r}")
        if isinstance(self.random_state, (bool, np.bool_)):  # check_random_state takes True for the seed 1
            raise ValueError(f"random_state must be None, an integer or a RandomState, got {self.random_state!r}")
        if self._task == CLASSIFICATION:  # before scikit-learn's checks, which call None a NaN, or fail to sort
            _check_labels(np.asarray(y, dtype=object))
        X, y = self._check_input(X, y, reset=True)
        if isinstance(X, torch.Tensor) and self._task == REGRESSION:
            raise ValueError("Regressor takes table rows (2-D X); images are for Classifier")
        if len(y) < 3:
            raise ValueError(f"{type(self).__name__} needs at least 3 samples (2 to train on, 1 to validate); "
                             f"got {len(y)} sample{'s' if len(y) != 1 else ''}")
        targets = self._encode_targets(y)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
            torch.manual_seed(seed)
            try:
                self._train(X, targets, seed, ratio)
            except UserError as e:
                raise EstimatorError(str(e)) from e
            except TypeError as e:  # a parameter of the wrong type (hidden_sizes=16, lr="0.1")
                raise EstimatorError(f"a parameter of the wrong type: {e}") from e
        return self

    def _train(self, X, targets: torch.Tensor, seed: int, ratio: float) -> None:
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
        n_train = min(max(int(len(targets) * ratio), 2), len(targets) - 1)  # a batch of 2 at least; 1 validates
        # Sorted: the rows keep the caller's order, so an error names the caller's row.
        train_rows, valid_rows = order[:n_train].sort().values, order[n_train:].sort().values
        record = self._fit_record(X, targets, train_rows)
        x = preprocessing.to_model_rows(record, X, "X")
        y = preprocessing.to_model_target(record, targets)
        config = self._config(record, len(train_rows), seed)
        input_shape = preprocessing.input_shape(record)
        facts = RunFacts()  # the precision build_trainer chooses
        callbacks = [EpochPrinter()] if config.verbose else []  # no progress bar: notebooks and logs
        if config.tensorboard:  # a folder per fit: a grid search's fits must not merge into one run
            run = Path(config.tensorboard) / time.strftime(f"fit-%Y%m%d-%H%M%S-{time.time_ns() % 10**6:06d}")
            callbacks.append(TensorBoardLog(run, lambda: saved_record(config, facts)))
        trainer = build_trainer(config, input_shape, self._output_size(), len(train_rows), torch.device("cpu"),
                                self._task, callbacks=callbacks, announce=bool(config.verbose),
                                train_targets=y[train_rows] if self._task == CLASSIFICATION else None,
                                class_weights=self._class_weights(), record=record, facts=facts)
        trainer.train((take_rows(x, train_rows), y[train_rows]), (take_rows(x, valid_rows), y[valid_rows]),
                      config.n_epochs, config.batch_size)
        trainer.model.load_state_dict(trainer.best_state)
        self.model_ = trainer.model.eval()
        self.optimizer_ = trainer.optimizer
        self.record_ = record
        self.config_ = saved_record(config, facts)
        self.history_ = trainer.history
        self.best_epoch_ = trainer.best_epoch

    def _class_weights(self) -> torch.Tensor | None:
        """``class_weight`` given as scikit-learn's ``{class: weight}`` (1 for a class it leaves out), in
        ``classes_``' order; None for "balanced" or none."""
        if not isinstance(self.class_weight, dict):
            return None
        if self._task != CLASSIFICATION:
            raise ValueError("class_weight weighs classes: it is a Classifier's parameter, not a Regressor's")
        unknown = [c for c in self.class_weight if c not in set(self.classes_.tolist())]
        if unknown:
            raise ValueError(f"class_weight names {unknown[0]!r}, which is not a class of y "
                             f"({', '.join(map(str, self.classes_))})")
        weights = [self.class_weight.get(c, 1.0) for c in self.classes_]
        if not all(isinstance(w, (int, float, np.number)) and not isinstance(w, bool) and w >= 0 for w in weights):
            raise ValueError(f"class_weight must map classes to non-negative numbers, got {self.class_weight!r}")
        return torch.tensor([float(w) for w in weights])

    def _fit_record(self, X, targets: torch.Tensor, train_rows: torch.Tensor) -> dict:
        if isinstance(X, list):  # raw documents
            if self._task == REGRESSION:
                raise ValueError("Regressor takes table rows (2-D X); texts are for Classifier")
            return preprocessing.fit_texts([X[i] for i in train_rows.tolist()])
        if isinstance(X, torch.Tensor):  # images; square colour ones as photos (what a folder gives)
            channels, height, width = X.shape[1:]
            if channels == 3 and height == width:
                return preprocessing.photo_record(tuple(X.shape[1:]))
            return preprocessing.image_record(tuple(X.shape[1:]))
        y = targets[train_rows] if self._task == REGRESSION else None
        return preprocessing.fit_table(X.iloc[train_rows.numpy()], y)

    def _config(self, record: dict, n_train: int, seed: int) -> TrainConfig:
        """This estimator's parameters as the command line's configuration, defaults filled in alike
        (numpy numbers and paths as plain values: the model file and JSON hold nothing else)."""
        kind = as_record(record)
        given = {name: _plain(getattr(self, name)) for name in TRAINING_PARAMETERS}
        if isinstance(given.get("class_weight"), dict):  # scikit-learn's {class: weight}: see _class_weights
            given["class_weight"] = None
        given |= {name: _plain(getattr(self, name)) for name in MODEL_PARAMETERS if name != "model_options"}
        given = {name: value for name, value in given.items() if value is not None}  # None: the run's choice
        options = _plain(self.model_options) or {}
        if not isinstance(options, dict):
            raise EstimatorError(f"model_options must be a dict of option names and values, got {options!r}")
        config = resolve({**given, "model_fn": "(in memory)", "seed": seed, "gpu_id": -1, "task": self._task,
                          "dataset": ESTIMATOR}, kind=type(kind), model_options=options)
        batch_size, n_epochs = config.batch_size, config.n_epochs
        if kind.sized_from_rows:  # the batch size and epochs a table's run chooses from its rows
            batch_size, epochs = kind.schedule(n_train, batch_size)
            n_epochs = n_epochs if n_epochs is not None else epochs
        tensorboard = None if config.tensorboard is None else str(config.tensorboard)
        return replace(config, batch_size=min(batch_size, n_train), n_epochs=n_epochs,
                       tensorboard=tensorboard).validate()

    # --- input -------------------------------------------------------------------------------------

    def _check_input(self, X, y=None, reset: bool = False):
        """X as a DataFrame of raw columns (tables) or a tensor (images), checked as scikit-learn checks
        input; y as a 1-D array. Raw documents (strings, scikit-learn's convention for text) as a list."""
        if _is_raw_documents(X) or self._fitted_on_texts():
            return self._check_documents(X, y)
        if isinstance(X, pd.DataFrame) and any(tables.is_text(X[name]) for name in X.columns):
            return self._check_text_table(X, y, reset)
        if reset or not self._fitted_on_images():
            kwargs = {"dtype": None if _is_uint8(X) else "numeric", "allow_nd": True, "ensure_min_features": 1}
            if y is None:
                X = validate_data(self, X, reset=reset, **kwargs)
            else:
                X, y = validate_data(self, X, y, reset=reset, y_numeric=self._task == REGRESSION, **kwargs)
        else:  # a fitted image model: the record checks the shape, (N, H, W) and (N, C, H, W) alike
            X = check_array(X, dtype=None if _is_uint8(X) else "numeric", allow_nd=True, ensure_2d=False)
        if X.ndim >= 3:
            images = torch.as_tensor(np.array(X))  # a copy: X may be read-only
            if X.ndim == 4 and X.shape[-1] == 3 and X.shape[1] != 3:  # (N, H, W, 3), as Pillow and numpy give
                images = images.permute(0, 3, 1, 2).contiguous()
            return (images.unsqueeze(1) if X.ndim == 3 else images), y
        if self._fitted_on_images():
            return torch.as_tensor(np.array(X)), y  # flat pixels, one row an image
        names = getattr(self, "feature_names_in_", None)
        columns = list(names) if names is not None else [f"x{i}" for i in range(X.shape[1])]
        return pd.DataFrame(np.asarray(X, dtype=np.float64), columns=columns), y

    def _fitted_on_images(self) -> bool:
        record = getattr(self, "record_", None)
        return isinstance(record, dict) and as_record(record).takes_pictures

    def _fitted_on_texts(self) -> bool:
        record = getattr(self, "record_", None)
        return isinstance(record, dict) and as_record(record).takes_texts

    def _check_documents(self, X, y):
        """Raw documents: an iterable of strings (a list, a pandas Series, a 1-D array), as a list."""
        if not _is_raw_documents(X):
            raise ValueError(f"this model was fitted on texts: X must be an iterable of strings (raw documents), "
                             f"got {type(X).__name__}")
        texts = X.tolist() if hasattr(X, "tolist") else list(X)
        if y is not None:
            y = column_or_1d(check_array(y, ensure_2d=False, dtype=None), warn=True)
            if len(y) != len(texts):
                raise ValueError(f"X has {len(texts)} texts but y has {len(y)} labels")
        return texts, y

    def _check_text_table(self, X: pd.DataFrame, y, reset: bool):
        """A DataFrame with text columns: scikit-learn's numeric checks would refuse it; the table
        record reads it. Number columns are checked here, naming the caller's row."""
        validate_data(self, X, reset=reset, skip_check_array=True)
        X = X.rename(columns=str)
        for name in X.columns:
            if not tables.is_text(X[name]):
                numbers, bad, problem = tables.as_number_column(X[name].astype("float64"))
                if bad is not None:
                    raise ValueError(f"X, row {bad + 1}, column {name!r}: {problem}")
                X[name] = numbers.to_numpy()
        if y is not None:
            y = column_or_1d(check_array(y, ensure_2d=False, dtype="numeric" if self._task == REGRESSION else None,
                                         ensure_all_finite=self._task == REGRESSION), warn=True)
            if len(y) != len(X):
                raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        return X, y

    def _prepared(self, X) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X, _ = self._check_input(X, reset=False)
        try:
            return preprocessing.to_model_input(self.record_, X, "X")
        except UserError as e:
            raise EstimatorError(str(e)) from e

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
        paths = companion_paths(path)
        try:  # never over a file of the user's: the command line's rule for --model_fn and its companions
            check_outputs({"--model_fn": path, "--model_fn's history": paths["history"],
                           "--model_fn's configuration": paths["config"]}, {})
        except UserError as e:
            raise EstimatorError(str(e).replace("--model_fn's ", "").replace("--model_fn ", "")) from e
        classes = _class_names(self.classes_) if self._task == CLASSIFICATION else None
        metadata = {"name": "estimator", "task": self._task, "classes": classes,
                    "feature_names": self.record_.get("feature_names")}
        names = getattr(self, "feature_names_in_", None)
        extra = {"estimator": {"feature_names_in": None if names is None else [str(n) for n in names]}}
        if self._task == CLASSIFICATION:  # the labels as fitted: their type, not only their text
            extra["estimator"] |= {"classes": self.classes_.tolist(), "classes_dtype": self.classes_.dtype.str}
        config = dict(self.config_, model_fn=str(Path(path).resolve()))
        try:
            save_model_file(path, self.model_, self.optimizer_, config, preprocessing=self.record_,
                            dataset=metadata, history=self.history_, best_epoch=self.best_epoch_,
                            **extra)
            write_history(paths["history"], self.history_)
            write_config(paths["config"], config)
        except UserError as e:  # a missing folder, a full disk
            raise EstimatorError(str(e)) from e

    @classmethod
    def load(cls, path: str | Path):
        """Any model file, as a fitted estimator of this kind (its parameters from the file's configuration)."""
        try:
            model, saved = load_model(path)
        except UserError as e:
            raise EstimatorError(str(e)) from e
        task = saved["dataset"].get("task", CLASSIFICATION)
        if task != cls._task:
            other = "Regressor" if task == REGRESSION else "Classifier"
            raise EstimatorError(f"{path}: a {task} model; load it with {other}.load")
        config = saved.get("config") or {}
        known = cls._get_param_names()
        estimator = cls(**{name: config[name] for name in known if name in config and name != "model_options"},
                        model_options=config.get("model_options"))
        estimator.model_, estimator.record_ = model.eval(), saved["preprocessing"]
        estimator.optimizer_, estimator.config_ = None, config
        estimator.history_, estimator.best_epoch_ = saved.get("history", []), saved.get("best_epoch")
        record, mine = estimator.record_, _estimator_entry(saved, path)
        kind = as_record(record)
        columns = kind.columns
        if columns is not None:
            names = [spec["name"] for spec in columns]
            estimator.n_features_in_ = len(names)
            # A file of ours says whether it was fitted with names; a training run's CSV columns are names.
            named = mine.get("feature_names_in") if mine else (names if record.get("feature_names") else None)
            if named is not None and len(named) != len(names):
                raise EstimatorError(f"{path}: the file's contents are damaged (its estimator's {len(named)} "
                                     f"feature names for {len(names)} columns)")
            if named is not None:
                estimator.feature_names_in_ = np.array(named, dtype=object)
        elif kind.takes_pictures:
            estimator.n_features_in_ = record["shape"][1]  # images (N, H, W): as fit() counts them
        elif not kind.takes_texts:  # raw documents have no features to count (as scikit-learn's vectorizers)
            estimator.n_features_in_ = kind.input_shape[0]
        if cls._task == CLASSIFICATION:
            estimator.classes_ = _saved_classes(saved["dataset"].get("classes"), mine, path)
        return estimator


def _plain(value):
    """numpy numbers as Python numbers, paths as text, tuples as lists: what model files and JSON hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _is_raw_documents(X) -> bool:
    """Whether ``X`` is texts: a non-empty list, tuple, Series or 1-D array of strings."""
    if isinstance(X, (str, bytes)) or not isinstance(X, (list, tuple, pd.Series, np.ndarray)):
        return False
    if getattr(X, "ndim", 1) != 1 or len(X) == 0:
        return False
    return all(isinstance(text, str) for text in X)


def _is_uint8(X) -> bool:
    return getattr(X, "dtype", None) == np.uint8


def _fitted_attributes(estimator) -> dict:
    """What ``fit`` sets: scikit-learn's rule is a name that ends in an underscore."""
    return {name: value for name, value in vars(estimator).items() if name.endswith("_")}


def _class_names(classes) -> list[str]:
    """The classes as a model file's ``dataset`` lists them (what ``Predictor`` and the CLI show)."""
    return [str(c) for c in classes]


def _estimator_entry(saved: dict, path) -> dict | None:
    """The file's ``estimator`` entry (in files an estimator saved), checked: one line for a damaged one."""
    mine = saved.get("estimator")
    if mine is None:
        return None
    names = mine.get("feature_names_in") if isinstance(mine, dict) else None
    classes = mine.get("classes") if isinstance(mine, dict) else None
    if not (isinstance(mine, dict) and (names is None or _list_of(names, (str,)))
            and (classes is None or _list_of(classes, (str, int, float, bool)))
            and isinstance(mine.get("classes_dtype", ""), str)):
        raise EstimatorError(f"{path}: the file's contents are damaged (its 'estimator' entry)")
    return mine


def _list_of(values, kinds: tuple) -> bool:
    return isinstance(values, list) and all(isinstance(v, kinds) for v in values)


def _saved_classes(names: list[str] | None, mine: dict | None, path) -> np.ndarray:
    """``classes_`` from a file. An estimator's file has the labels as fitted ('1' stays text, 3 an
    integer), which must be the file's classes; a command-line run's classes are text, and those it
    wrote for digits ("0".."9") are the integers they were, so that ``score`` compares them with
    integer labels."""
    if not names:
        raise EstimatorError(f"{path}: the file's contents are damaged (a classification model without classes)")
    if mine is None or mine.get("classes") is None:
        if all(v.lstrip("-").isdigit() and str(int(v)) == v for v in names):
            return np.array([int(v) for v in names])
        return np.array(names)
    try:
        classes = np.array(mine["classes"], dtype=mine.get("classes_dtype"))
    except (TypeError, ValueError):  # not a dtype numpy knows, or values it cannot hold
        classes = None
    if classes is None or classes.dtype.kind not in "OUbiuf" or _class_names(classes) != names:
        raise EstimatorError(f"{path}: the file's contents are damaged (the estimator's classes are not the "
                             f"{len(names)} classes of the model)")
    return classes


class Classifier(ClassifierMixin, _Estimator):
    """A scikit-learn classifier: this project's model (``model="mlp"``, ``"cnn"``, ``"rnn"`` or ``"linear"``)
    trained by its Trainer on NLLLoss of log-probabilities."""

    _task = CLASSIFICATION

    def _encode_targets(self, y) -> torch.Tensor:
        check_classification_targets(y)
        self.classes_, indices = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"Classifier needs samples of at least 2 classes; got 1 class ({self.classes_[0]})")
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


# numpy kinds of labels a model file cannot give back: dates, durations, bytes, records (complex numbers
# scikit-learn's own check refuses).
UNSAVED_LABEL_KINDS = "mMSV"


def _check_labels(y: np.ndarray) -> None:
    """Labels a class can be made of: none missing, all of one kind (numpy sorts them to number the
    classes, and cannot sort None, nor text among numbers)."""
    if y.ndim != 1 and y.shape[1:] != (1,):
        return  # not a column of labels: scikit-learn's checks say so
    y = y.reshape(-1)
    missing = pd.isna(y)
    if missing.any():
        row = int(np.argmax(missing))
        raise ValueError(f"y, row {row + 1}: a missing label ({y[row]!r}); every sample needs a class")
    kinds = {"text" if isinstance(v, str) else "numbers" if isinstance(v, (int, float, np.number)) else
             type(v).__name__ for v in y} if y.dtype == object else set()
    if len(kinds) > 1:
        raise ValueError(f"y mixes labels of different types ({', '.join(sorted(kinds))}); give every label "
                         "the same type")
    if y.dtype.kind in UNSAVED_LABEL_KINDS or kinds - {"text", "numbers", "complex"}:  # complex: as above
        # A model file holds plain values: dates or objects as classes could be fitted, not loaded back.
        raise ValueError(f"y holds labels of type {kinds.pop() if kinds else y.dtype}; give labels as text, "
                         "integers, booleans or floats (e.g. y.astype(str) for dates)")


class Regressor(RegressorMixin, _Estimator):
    """A scikit-learn regressor: this project's model with one output, MSE on standardised targets."""

    _task = REGRESSION

    def _encode_targets(self, y) -> torch.Tensor:
        y = np.asarray(y, dtype=np.float64)
        if np.abs(y).max() > tables.FLOAT32_MAX:
            raise ValueError("y holds values beyond what 32-bit floats hold (about 3.4e38); rescale it")
        # torch.tensor copies: y may be a read-only memory map.
        return torch.tensor(y, dtype=torch.float32).reshape(-1, 1)

    def _output_size(self) -> int:
        return 1

    def predict(self, X) -> np.ndarray:
        output = self._output(X).squeeze(-1)
        return (output * self.record_["y_std"] + self.record_["y_mean"]).numpy()  # in float64, in y's units
