"""The scikit-learn estimators, judged by scikit-learn's own checks and used as scikit-learn users do."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from mnist_classifier import Classifier, Predictor, Regressor
from mnist_classifier.cli.evaluate import main as evaluate_main

from .conftest import beside

# As scikit-learn's own suite shortens its iterative models (max_iter) for its checks: few epochs.
FAST = {"n_epochs": 15, "random_state": 0}
# Checks a neural network trained by stochastic gradient descent cannot pass, with the reason.
EXPECTED_FAILURES: dict[str, str] = {}


def expected_failures(estimator) -> dict[str, str]:
    return EXPECTED_FAILURES


@parametrize_with_checks([Classifier(**FAST), Regressor(**FAST)], expected_failed_checks=expected_failures)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_cross_val_score_and_a_pipeline_with_a_scaler():
    X, y = make_classification(n_samples=300, n_features=8, n_informative=5, random_state=0)
    scores = cross_val_score(make_pipeline(StandardScaler(), Classifier(**FAST)), X, y, cv=3)
    assert len(scores) == 3 and scores.min() > 0.75  # logistic regression scores about 0.8 here


def test_grid_search_clones_and_refits_the_best():
    X, y = make_regression(n_samples=200, n_features=5, noise=5.0, random_state=0)
    search = GridSearchCV(Regressor(**FAST), {"hidden_sizes": [(16,), (64, 64)], "lr": [1e-3, 3e-3]}, cv=2, n_jobs=1)
    search.fit(X, y)
    assert set(search.best_params_) == {"hidden_sizes", "lr"} and search.best_score_ > 0.8
    assert search.best_estimator_.config_["model_options"]["hidden_sizes"] == list(search.best_params_["hidden_sizes"])


def shop(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"age": rng.integers(18, 80, rows), "city": rng.choice(["Lyon", "Oslo", "Riga"], rows),
                          "member": rng.choice(["yes", "no"], rows)})
    y = np.where((frame.city == "Lyon") ^ (frame.member == "no"), "buy", "skip")
    return frame, y


def test_a_dataframe_with_text_columns_trains_saves_and_loads(tmp_path):
    frame, y = shop(300)
    clf = Classifier(**FAST).fit(frame, y)
    assert list(clf.feature_names_in_) == ["age", "city", "member"] and clf.n_features_in_ == 3
    assert list(clf.classes_) == ["buy", "skip"] and clf.score(frame, y) > 0.95
    assert len(clf.history_) == 15 and 1 <= clf.best_epoch_ <= 15
    with pytest.raises(ValueError, match="feature names"):  # scikit-learn's own check of the columns
        clf.predict(frame[["city", "age", "member"]])
    clf.save(tmp_path / "shop.pth")
    assert (beside(tmp_path / "shop.pth", "history")).read_text().count("\n") == 16  # a header and 15 epochs
    assert '"n_epochs": 15' in (beside(tmp_path / "shop.pth", "config")).read_text()
    loaded = Classifier.load(tmp_path / "shop.pth")
    np.testing.assert_array_equal(loaded.predict(frame), clf.predict(frame))
    np.testing.assert_allclose(loaded.predict_proba(frame), clf.predict_proba(frame))
    # The file is a normal model file: the Predictor and the estimator agree.
    assert [p.label for p in Predictor(tmp_path / "shop.pth").predict(frame)] == list(clf.predict(frame))
    with pytest.raises(ValueError, match="a classification model; load it with Classifier.load"):
        Regressor.load(tmp_path / "shop.pth")
    with pytest.raises(SystemExit):  # no dataset to reload: one line, not an unknown --dataset
        evaluate_main(["--model_fn", str(tmp_path / "shop.pth"), "--out_dir", str(tmp_path / "report")])


def test_images_train_a_cnn():
    digits = load_digits()
    X = digits.images / 16.0  # (N, 8, 8) pixels in [0, 1]
    clf = Classifier(model="cnn", n_epochs=10, batch_size=32, random_state=0).fit(X[:1200], digits.target[:1200])
    assert clf.score(X[1200:], digits.target[1200:]) > 0.8
    assert clf.predict_proba(X[:5]).shape == (5, 10) and clf.n_features_in_ == 8


def test_fit_leaves_the_callers_random_state_alone_and_repeats_itself():
    X, y = make_classification(n_samples=100, random_state=1)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = Classifier(**FAST).fit(X, y).predict_proba(X)
    assert torch.equal(torch.rand(3), before)
    np.testing.assert_array_equal(Classifier(**FAST).fit(X, y).predict_proba(X), first)


def test_mistakes_are_value_errors_with_the_reason():
    X, y = make_classification(n_samples=50, random_state=0)
    with pytest.raises(ValueError, match="model must be one of"):
        Classifier(model="nope").fit(X, y)
    with pytest.raises(ValueError, match="^lr must be positive"):
        Regressor(lr=-1.0).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="at least 3 samples"):
        Classifier().fit(X[:1], y[:1])
    frame, labels = shop(40)
    with pytest.raises(ValueError, match="Input contains NaN"):  # the text-column path checks y too
        Regressor(n_epochs=2).fit(frame, np.where(np.arange(40) == 5, np.nan, 1.0 * np.arange(40)))
    frame["age"] = frame["age"].astype(float)
    frame.loc[6, "age"] = np.inf
    with pytest.raises(ValueError, match=r"X, row 7, column 'age': 'inf' is not a finite number"):
        Classifier(n_epochs=2).fit(frame, labels)
    with pytest.raises(ValueError, match="Regressor takes table rows"):
        Regressor(n_epochs=2).fit(np.zeros((10, 4, 4)), np.arange(10.0))


@pytest.mark.parametrize("params, message", [
    ({"model_options": {"dropout_p": 2, "use_dropout": True}}, r"dropout_p must lie in \[0, 0.99\], got 2"),
    ({"model_options": {"bogus": 1}}, "bogus does not apply to --model mlp"),
    ({"model_options": ["a"]}, "model_options must be a dict"),
    ({"batch_size": 0}, "^batch_size must be a positive integer, got 0"),
])
def test_every_parameter_is_checked_however_it_is_given(params, message):
    X, y = make_classification(n_samples=50, random_state=0)
    with pytest.raises(ValueError, match=message):
        Classifier(n_epochs=1, **params).fit(X, y)
    with pytest.raises(ValueError, match="^n_epochs must be a positive integer, got 0"):
        Classifier(n_epochs=0).fit(X, y)


def test_numpy_parameters_from_a_search_space_fit_save_and_load(tmp_path):
    X, y = make_classification(n_samples=80, random_state=0)
    clf = Classifier(n_epochs=np.int64(4), lr=np.float32(0.01), hidden_sizes=(np.int64(8),), patience=1,
                     random_state=0, tensorboard=tmp_path / "tb").fit(X, y)
    assert len(clf.history_) <= 4 and clf.config_["lr"] == pytest.approx(0.01)
    clf.save(tmp_path / "m.pth")
    loaded = Classifier.load(tmp_path / "m.pth")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert not hasattr(loaded, "feature_names_in_")  # fitted on an array: no invented names
    # patience stops the run: a rate that overshoots has no better epoch after the first few.
    stopped = Classifier(n_epochs=40, patience=2, lr=0.5, random_state=0).fit(X, y)
    assert len(stopped.history_) == stopped.best_epoch_ + 2 < 40


def test_save_never_replaces_a_file_of_the_users(tmp_path):
    X, y = make_classification(n_samples=60, random_state=0)
    clf = Classifier(n_epochs=2, random_state=0).fit(X, y)
    (tmp_path / "notes.txt").write_text("my thesis\n")
    with pytest.raises(ValueError, match="exists and is not a model file of mnist_classifier"):
        clf.save(tmp_path / "notes.txt")
    (beside(tmp_path / "m.pth", "config")).write_text("{}")
    with pytest.raises(ValueError, match="m.pth.config.json exists and is not a configuration JSON"):
        clf.save(tmp_path / "m.pth")
    assert (tmp_path / "notes.txt").read_text() == "my thesis\n" and not (tmp_path / "m.pth").exists()


def test_image_models_round_trip_and_command_line_files_load(tmp_path):
    digits = load_digits()
    images = (digits.images * 255 / 16).round().astype(np.uint8)  # uint8 pixels are divided by 255
    clf = Classifier(n_epochs=3, random_state=0).fit(images[:600], digits.target[:600])
    clf.save(tmp_path / "img.pth")
    np.testing.assert_array_equal(Classifier.load(tmp_path / "img.pth").predict(images[600:700]),
                                  clf.predict(images[600:700]))
    from mnist_classifier.cli.train import main as train_main

    train_main(["--dataset", "digits", "--model_fn", str(tmp_path / "cli.pth"), "--n_epochs", "2", "--verbose", "0",
                "--seed", "0", "--hidden_sizes", "32"])
    loaded = Classifier.load(tmp_path / "cli.pth")
    assert loaded.classes_.tolist() == list(range(10))  # the file's "0".."9" as the integers they were
    predicted = loaded.predict(digits.images / 16)
    assert predicted.tolist() == [int(p.label) for p in Predictor(tmp_path / "cli.pth").predict(digits.images / 16)]
    assert loaded.score(digits.images / 16, digits.target) == pytest.approx((predicted == digits.target).mean())
