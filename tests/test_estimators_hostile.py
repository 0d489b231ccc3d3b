"""The estimators against a hostile user (issue 27): labels that must come back as they were, fits
that fail half-way, damaged files, booleans for numbers, odd label columns, pickling, models too
large for the memory the process may use."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from mnist_classifier import Classifier, Regressor, resources
from mnist_classifier.cli.train import parse_config
from mnist_classifier.errors import UserError
from mnist_classifier.estimators import TRAINING_PARAMETERS
from mnist_classifier.training.config import TRAIN_OPTIONS, from_record

QUICK = {"n_epochs": 3, "random_state": 0}


def rows(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four features, two classes that the first feature separates."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] > 0).astype(int)


# --- classes come back from a file exactly as they were fitted --------------------------------------

@pytest.mark.parametrize("labels", [
    np.array(["1", "2"]),                        # text that looks like digits: not the CLI's 0..9
    np.array(["1", "2"], dtype=object),          # as a pandas column of text gives them
    np.array([3, 7]),
    np.array([1.0, 2.0]),
    np.array([False, True]),
    np.array(["-1", "01"]),
], ids=["digit-text", "object-text", "ints", "floats", "bools", "odd-digit-text"])
def test_classes_round_trip_through_save_and_load(tmp_path, labels):
    X, y = rows()
    y = labels[y]
    clf = Classifier(**QUICK).fit(X, y)
    clf.save(tmp_path / "m.pth")
    loaded = Classifier.load(tmp_path / "m.pth")
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert [type(c) for c in loaded.classes_] == [type(c) for c in clf.classes_]
    assert loaded.classes_.tolist() == clf.classes_.tolist()
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.score(X, y) == clf.score(X, y) > 0.8


# --- a fit that fails leaves the estimator as it was ------------------------------------------------

def test_a_failed_fit_leaves_the_fitted_estimator_as_it_was():
    X, y = rows()
    clf = Classifier(**QUICK).fit(X, y)
    before = {name: value for name, value in vars(clf).items() if name.endswith("_")}
    predicted = clf.predict(X)
    three = np.arange(len(y)) % 3
    clf.set_params(lr=-1.0)  # refused after the classes and the features are read, before training
    with pytest.raises(ValueError, match="^lr must be positive"):
        clf.fit(np.hstack([X, X]), three)
    assert set(vars(clf)) >= set(before)
    assert all(getattr(clf, name) is value for name, value in before.items())
    assert clf.classes_.tolist() == [0, 1] and clf.n_features_in_ == 4
    np.testing.assert_array_equal(clf.predict(X), predicted)


def test_a_failed_first_fit_leaves_the_estimator_unfitted():
    X, y = rows()
    clf = Classifier(lr=-1.0, **QUICK)
    with pytest.raises(ValueError):
        clf.fit(X, y)
    assert not [name for name in vars(clf) if name.endswith("_")]


def test_a_fit_stopped_by_the_user_leaves_the_estimator_as_it_was(monkeypatch):
    X, y = rows()
    clf = Classifier(**QUICK).fit(X, y)
    model = clf.model_
    from mnist_classifier.training import trainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, np.arange(len(y)) % 3)
    assert clf.model_ is model and clf.classes_.tolist() == [0, 1]


# --- damaged model files ------------------------------------------------------------------------

def saved_payload(tmp_path) -> tuple[Classifier, dict]:
    X, y = rows()
    clf = Classifier(**QUICK).fit(X, np.array(["no", "yes"])[y])
    clf.save(tmp_path / "m.pth")
    return clf, torch.load(tmp_path / "m.pth", weights_only=True)


def test_load_refuses_classes_that_disagree_with_the_model(tmp_path):
    _, payload = saved_payload(tmp_path)
    payload["estimator"]["classes"] = ["no", "yes", "maybe"]  # the model gives 2 outputs
    torch.save(payload, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"bad.pth: .*classes") as caught:
        Classifier.load(tmp_path / "bad.pth")
    assert "\n" not in str(caught.value)
    payload["estimator"]["classes"] = ["yes", "no"]  # the right number, in the wrong order
    torch.save(payload, tmp_path / "swapped.pth")
    with pytest.raises(UserError, match=r"swapped.pth: .*classes"):
        Classifier.load(tmp_path / "swapped.pth")


@pytest.mark.parametrize("entry, value", [("estimator", "oops"), ("estimator", {"classes": "ab"}),
                                          ("estimator", {"feature_names_in": 3}), ("config", "oops")])
def test_load_of_a_file_with_a_damaged_entry_is_one_line(tmp_path, entry, value):
    _, payload = saved_payload(tmp_path)
    payload[entry] = value
    torch.save(payload, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"bad.pth: the file's contents are damaged") as caught:
        Classifier.load(tmp_path / "bad.pth")
    assert "\n" not in str(caught.value)


# --- booleans are not numbers --------------------------------------------------------------------

NUMBER_PARAMETERS = [name for name in TRAINING_PARAMETERS
                     if name in TRAIN_OPTIONS and TRAIN_OPTIONS[name].kind in (int, float)]


@pytest.mark.parametrize("name", [*NUMBER_PARAMETERS, "n_layers", "dropout_p", "train_ratio", "random_state"])
def test_a_boolean_for_a_number_parameter_is_refused(name):
    X, y = rows(30)
    with pytest.raises(ValueError, match=f"{name}.*True"):
        Classifier(**{**QUICK, name: True}).fit(X, y)


def test_a_boolean_in_the_hidden_sizes_is_refused():
    X, y = rows(30)
    with pytest.raises(ValueError, match="hidden_sizes.*True"):
        Classifier(hidden_sizes=(True, 8), **QUICK).fit(X, y)


def test_a_config_file_with_booleans_for_numbers_is_refused(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"lr": True, "n_epochs": True}))
    with pytest.raises(UserError, match="must be .*, got True"):
        parse_config(["--config", str(tmp_path / "c.json"), "--model_fn", str(tmp_path / "m.pth")])
    (tmp_path / "d.json").write_text(json.dumps({"dropout_p": True}))
    with pytest.raises(UserError, match="dropout_p must be a number, got True"):
        parse_config(["--config", str(tmp_path / "d.json"), "--model_fn", str(tmp_path / "m.pth")])


def test_a_boolean_number_of_processes_is_refused(tmp_path):
    with pytest.raises(UserError, match="number of processes must be a positive integer, got True"):
        from_record({"model_fn": str(tmp_path / "m.pth"), "world_size": True})


# --- labels that cannot be classes, and pandas columns of labels ---------------------------------

@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_a_missing_label_among_text_labels_is_a_clear_error(missing):
    X, y = rows(30)
    labels = np.array(["no", "yes"], dtype=object)[y]
    labels[7] = missing
    with pytest.raises(ValueError, match=r"y, row 8: a missing label"):
        Classifier(**QUICK).fit(X, labels)
    with pytest.raises(ValueError, match=r"y, row 8: a missing label"):
        Classifier(**QUICK).fit(X, pd.Series(labels))


def test_labels_of_text_and_numbers_together_are_a_clear_error():
    X, y = rows(30)
    labels = np.array(["no", "yes"], dtype=object)[y]
    labels[3] = 5
    with pytest.raises(ValueError, match="Mix of label input types|mixes"):
        Classifier(**QUICK).fit(X, labels)


def test_a_categorical_column_of_integers_as_labels_or_as_a_feature():
    X, y = rows()
    labels = pd.Series(pd.Categorical(y * 3 + 1))  # categories 1 and 4
    clf = Classifier(**QUICK).fit(X, labels)
    assert clf.classes_.tolist() == [1, 4] and clf.score(X, labels) > 0.8
    frame = pd.DataFrame({"level": pd.Categorical(y * 3 + 1), "noise": X[:, 1]})
    clf = Classifier(**QUICK).fit(frame, y)
    assert clf.score(frame, y) > 0.9
    assert Regressor(**QUICK).fit(frame, y * 1.5).predict(frame).shape == (len(y),)


# --- pickling, as a grid search and joblib do ----------------------------------------------------

def test_fitted_and_unfitted_estimators_pickle():
    X, y = rows()
    for estimator in (Classifier(**QUICK), Regressor(**QUICK)):
        assert pickle.loads(pickle.dumps(estimator)).get_params() == estimator.get_params()
    clf = Classifier(verbose=1, patience=2, **QUICK).fit(X, np.array(["no", "yes"])[y])
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_a_grid_searchs_best_estimator_pickles():
    X, y = rows()
    search = GridSearchCV(Classifier(**QUICK), {"lr": [1e-3, 1e-2]}, cv=2, n_jobs=1).fit(X, y)
    again = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(again.predict(X), search.best_estimator_.predict(X))
    assert pickle.loads(pickle.dumps(search)).predict(X).tolist() == search.predict(X).tolist()


# --- a model too large for the memory the process may use ----------------------------------------

def test_a_model_too_large_for_the_available_memory_is_refused_before_it_is_built(monkeypatch):
    monkeypatch.setattr(resources, "_machine_available", lambda: 6 * 2**30)  # as under a 6 GB limit
    X, y = rows(30)
    refusal = r"--hidden_sizes 65536,20000\) would have 1,311,\d{3},\d{3} parameters .* 19\.5 GiB .* 6\.0 GiB"
    with pytest.raises(UserError, match=refusal):
        Classifier(hidden_sizes=(65536, 20000), **QUICK).fit(X, y)


def test_the_available_memory_counts_an_address_space_limit(monkeypatch):
    """``ulimit -v`` (RLIMIT_AS), as batch systems and ``prlimit`` set: malloc fails past it, however
    much memory the machine has free."""
    monkeypatch.setattr(resources, "_machine_available", lambda: 100 * 2**30)
    monkeypatch.setattr(resources, "_cgroup_room", lambda: None)
    limits = {resources.resource.RLIMIT_AS: 6 * 2**30, resources.resource.RLIMIT_DATA: 5 * 2**30}
    monkeypatch.setattr(resources.resource, "getrlimit",
                        lambda which: (limits.get(which, resources.resource.RLIM_INFINITY),) * 2)
    monkeypatch.setattr(resources, "_process_sizes", lambda: {"VmSize": 2 * 2**30, "VmData": 2 * 2**30})
    assert resources.available_memory() == 3 * 2**30  # RLIMIT_DATA's room: 5 GiB less the 2 in use
    limits.pop(resources.resource.RLIMIT_DATA)
    assert resources.available_memory() == 4 * 2**30
    limits.clear()
    assert resources.available_memory() == 100 * 2**30


def test_labels_a_model_file_cannot_give_back_are_refused_before_training():
    # Dates fitted, saved as datetime.date objects, then refused by the loader: refused at fit instead.
    X, y = rows(30)
    dates = np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]")[y]
    with pytest.raises(ValueError, match=r"labels of type date; give labels as text"):
        Classifier(**QUICK).fit(X, dates)
