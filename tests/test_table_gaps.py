"""Real tables: gaps filled from the training rows, words that are levels, declared and ID columns,
decimal commas, other encodings, and --model auto choosing between linear and mlp."""

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mnist_classifier.cli import predict as predict_cli
from mnist_classifier.cli.train import main as train_main
from mnist_classifier.cli.train import parse_config
from mnist_classifier.data import preprocessing, tables
from mnist_classifier.data.csv_data import read_rows
from mnist_classifier.errors import UserError
from mnist_classifier.inference.predictor import Predictor
from mnist_classifier.kinds import load_dataset
from mnist_classifier.utils import split_indices

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
# Loans as they come, the docs' walk-through table: an id, 'none' and 'NA' levels, about 10% gaps.
from eval_tables import loans_table  # noqa: E402


def train(tmp_path, frame: pd.DataFrame, *flags: str, name: str = "loans.csv", **to_csv) -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False, **to_csv)
    model_fn = str(tmp_path / "m.pth")
    train_main(["--dataset", f"csv:{path}", "--model_fn", model_fn, "--seed", "0", "--verbose", "0",
                "--n_epochs", "5", "--amp", "off", *flags])
    return model_fn


def test_gaps_are_filled_from_the_training_rows_only_with_was_missing_inputs(tmp_path):
    frame = loans_table(400, seed=0)
    model_fn = train(tmp_path, frame, "--model", "mlp", "--train_ratio", "0.5")
    specs = {spec["name"]: spec for spec in torch.load(model_fn, weights_only=True)["preprocessing"]["columns"]}
    dataset = load_dataset(f"csv:{tmp_path / 'loans.csv'}")
    torch.manual_seed(0)  # the run's seed: the same validation split
    train_rows, _ = split_indices(len(dataset), 0.5)
    income = dataset.train[0]["income"]
    assert specs["income"]["fill"] == pytest.approx(income.iloc[train_rows.numpy()].median())
    assert specs["income"]["fill"] != pytest.approx(income.median())  # the validation rows did not count
    gaps_in_training = int(income.iloc[train_rows.numpy()].isna().sum())
    assert specs["income"]["gaps"] == gaps_in_training > 0
    assert specs["region"]["gaps"] == 0  # no gaps there: no extra input
    widths = {name: tables.width(spec) for name, spec in specs.items()}
    # income and its was-missing input; yes/no and its was-missing input; 4 levels, other and missing; 3 + other.
    assert widths == {"income": 2, "owner": 2, "education": 6, "region": 4}
    record = torch.load(model_fn, weights_only=True)["preprocessing"]
    rows = pd.DataFrame({"income": [None, 40.0], "owner": ["", "no"], "education": [None, "none"],
                         "region": ["EU", "NA"]})
    encoded = tables.encode(record["columns"], rows)
    assert encoded[0, :2].tolist() == [specs["income"]["fill"], 1.0] and encoded[1, :2].tolist() == [40.0, 0.0]
    assert encoded[0, 2:4].tolist() == [specs["owner"]["fill"], 1.0]  # the third state: the share of yes, flagged
    education = specs["education"]["levels"]
    assert encoded[0, 4:10].tolist() == [0, 0, 0, 0, 0, 1]  # the missing slot, not "other"
    assert encoded[1, 4 + education.index("none")] == 1  # 'none' is a level


def test_words_that_mean_missing_depend_on_the_kind_of_column(tmp_path):
    rows = "".join(f"{['none', 'school', 'NA', 'null'][i % 4]},{['NA', 'n/a', '', str(i)][i % 4]},{i % 2}\n"
                   for i in range(40))
    (tmp_path / "w.csv").write_text("education,amount,y\n" + rows)
    dataset = load_dataset(f"csv:{tmp_path / 'w.csv'}")
    x = pd.concat([dataset.train[0], dataset.test[0]])
    assert sorted(x["education"].unique()) == ["NA", "none", "null", "school"]  # levels, not gaps
    assert x["amount"].isna().sum() == 30  # NA, n/a and empty are gaps in a number column
    record = preprocessing.fit_table(dataset.train[0])
    assert preprocessing.describe_columns(record, details=True).startswith(
        "2 columns: 1 number, 1 text (education: 4 levels (")
    # --na_values makes a word a gap in every column, text ones included.
    dataset = load_dataset(f"csv:{tmp_path / 'w.csv'}", na_values="null, none")
    x = pd.concat([dataset.train[0], dataset.test[0]])
    assert sorted(x["education"].dropna().unique()) == ["NA", "school"] and x["education"].isna().sum() == 20
    record = preprocessing.fit_table(dataset.train[0], na_values=dataset.na_values)
    assert record["columns"][0]["na_values"] == ["null", "none"]
    encoded = preprocessing.to_model_input(record, pd.DataFrame({"education": ["none", "NA"], "amount": [1, 2]}))
    missing_slot = tables.width(record["columns"][0]) - 1
    assert encoded[0, missing_slot] == 1 and encoded[1, missing_slot] == 0  # predict time reads the words too


def test_declared_text_ignored_and_id_columns(tmp_path, capsys):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"customer_id": np.arange(1000, 1060), "name": [f"person {i}" for i in range(60)],
                          "zip": rng.choice(["01230", "75001", "10115"], 60), "note": ["ok"] * 60,
                          "x": rng.normal(size=60), "y": rng.choice(["a", "b"], 60)})
    frame.to_csv(tmp_path / "c.csv", index=False)
    dataset = load_dataset(f"csv:{tmp_path / 'c.csv'}", text_columns="zip", ignore_columns="note")
    assert dataset.feature_names == ["zip", "x"]  # the ID and the names unique in every row, left out
    assert set(dataset.train[0]["zip"]) == {"01230", "75001", "10115"}  # codes kept as written
    assert any("'customer_id' left out: a different whole number in every row, and named like an ID" in note
               for note in dataset.notes)
    assert any("'name' left out: unique in every row, like an ID" in note for note in dataset.notes)
    # Without --text_columns the codes are numbers; naming the text ID keeps it.
    dataset = load_dataset(f"csv:{tmp_path / 'c.csv'}", text_columns="name")
    assert pd.api.types.is_float_dtype(dataset.train[0]["zip"]) and "name" in dataset.feature_names
    train_main(["--dataset", f"csv:{tmp_path / 'c.csv'}", "--model_fn", str(tmp_path / "c.pth"), "--n_epochs", "1",
                "--verbose", "0", "--model", "linear", "--amp", "off"])
    assert "mnist-train: c.csv: column 'customer_id' left out" in capsys.readouterr().err


def test_decimal_commas_are_sniffed_in_semicolon_files_or_given(tmp_path):
    rows = "".join(f"{i % 7},{i % 3}5;{'ab'[i % 2]}\n" for i in range(30))
    (tmp_path / "eu.csv").write_text("amount;y\n" + rows)
    dataset = load_dataset(f"csv:{tmp_path / 'eu.csv'}")
    amounts = pd.concat([dataset.train[0], dataset.test[0]])["amount"]
    assert pd.api.types.is_float_dtype(amounts)
    assert set(amounts.round(2)) == {round(i % 7 + (i % 3 * 10 + 5) / 100, 2) for i in range(30)}
    assert dataset.found == "eu.csv (semicolons, decimal commas)"
    # A file with decimal points too is left alone by the sniffing (its amounts are text); --decimal decides.
    (tmp_path / "mixed.csv").write_text("amount;y\n1.5;a\n" + rows)
    assert not pd.api.types.is_float_dtype(load_dataset(f"csv:{tmp_path / 'mixed.csv'}").train[0]["amount"])
    assert pd.api.types.is_float_dtype(load_dataset(f"csv:{tmp_path / 'mixed.csv'}", decimal=",").train[0]["amount"])
    (tmp_path / "given.csv").write_text("amount|y\n" + rows.replace(";", "|"))
    dataset = load_dataset(f"csv:{tmp_path / 'given.csv'}", decimal=",")
    assert pd.api.types.is_float_dtype(dataset.train[0]["amount"])
    # Predict-time files are read the same way, with gaps among the numbers.
    (tmp_path / "new.csv").write_text("amount;y\n1,25;a\n;b\n")
    assert read_rows(tmp_path / "new.csv", columns=["amount"], numbers=["amount"])["amount"].tolist() == ["1.25", ""]
    # Thousands grouped with points: 85.591 is 85591 there, and 2.817,20 is 2817.2, sniffed or given.
    rows = "".join(f"{i % 7},{i % 3}5;{85 + i}.591;{2 + i % 2}.817,20;{'ab'[i % 2]}\n" for i in range(30))
    (tmp_path / "grouped.csv").write_text("amount;people;price;y\n" + rows)
    x = load_dataset(f"csv:{tmp_path / 'grouped.csv'}").train[0]
    assert set(x["people"]) <= {85591.0 + 1000 * i for i in range(30)} and set(x["price"]) == {2817.2, 3817.2}
    with pytest.raises(UserError, match=r"--decimal , needs cells split by another character"):
        load_dataset(f"csv:{tmp_path / 'given.csv'}", decimal=",", delimiter=",")


@pytest.mark.parametrize("encoding, shown, cities", [
    ("latin-1", "cp1252", ["Zürich", "Besançon", "Köln", "Málaga"]),
    ("cp1252", "cp1252", ["Zürich", "Köln", "São", "Montréal"]),  # ranked mac-latin2 first by the detector
    ("utf-16", "utf-16", ["Zürich", "Besançon", "Köln", "Málaga"]),
])
def test_files_in_other_encodings_are_detected_and_named(tmp_path, encoding, shown, cities, capsys):
    rows = "".join(f"{cities[i % 4]},{i % 5},{'oui' if i % 2 else 'non'}\n" for i in range(40))
    (tmp_path / "f.csv").write_bytes(("ville,n,y\n" + rows).encode(encoding))
    dataset = load_dataset(f"csv:{tmp_path / 'f.csv'}")
    assert set(dataset.train[0]["ville"]) == set(cities)
    assert dataset.found == f"f.csv (read as {shown})"
    train_main(["--dataset", f"csv:{tmp_path / 'f.csv'}", "--model_fn", str(tmp_path / "f.pth"), "--n_epochs", "1",
                "--model", "linear", "--amp", "off", "--seed", "0"])
    assert capsys.readouterr().out.startswith(f"f.csv (read as {shown}): 2 columns: 1 number, 1 text (ville: 4 levels")
    # --encoding is what the file is read with, and an unknown one is one line.
    dataset = load_dataset(f"csv:{tmp_path / 'f.csv'}", encoding=encoding)
    assert set(dataset.train[0]["ville"]) == set(cities)
    for bogus in ("klingon", "rot13"):  # rot13 is a codec, but not of bytes to text
        with pytest.raises(UserError, match=f"--encoding {bogus}: no such text encoding"):
            parse_config(["--dataset", f"csv:{tmp_path / 'f.csv'}", "--model_fn", "m.pth", "--encoding", bogus])
    # A predict file in that encoding is read the same way, and said so.
    (tmp_path / "new.csv").write_bytes(f"ville,n\n{cities[0]},3\n".encode(encoding))
    capsys.readouterr()
    predict_cli.main(["--model_fn", str(tmp_path / "f.pth"), str(tmp_path / "new.csv"), "--out",
                      str(tmp_path / "p.csv")])
    assert f"new.csv (read as {shown})" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "p.csv")["ville"].tolist() == [cities[0]]


def test_a_bom_less_utf16_file_given_as_utf16_is_one_line(tmp_path):
    (tmp_path / "u.csv").write_bytes("a,y\n1,x\n2,y\n".encode("utf-16-le"))
    with pytest.raises(UserError, match=r"u.csv: cannot be read as utf-16 .*give its encoding with --encoding"):
        load_dataset(f"csv:{tmp_path / 'u.csv'}", encoding="utf-16")


def test_model_auto_keeps_the_family_with_the_lower_validation_loss(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 400))
    xor = pd.DataFrame({"a": a, "b": b, "y": np.where((a > 0) ^ (b > 0), "same", "differ")})
    line = pd.DataFrame({"a": a, "b": b, "y": 3 * a - 2 * b + 0.01 * rng.normal(size=400)})
    kept = {}
    for name, frame, task in (("xor", xor, "classification"), ("line", line, "regression")):
        model_fn = train(tmp_path, frame, "--task", task, "--verbose", "1", "--n_epochs", "40", "--checkpoint_every",
                         "20", name=f"{name}.csv")
        out = capsys.readouterr().out
        assert "--model auto: training linear and mlp on the same rows" in out
        kept[name] = torch.load(model_fn, weights_only=True)["model_name"]
        assert re.search(rf"--model auto: mlp's validation loss is (lower|higher) by \S+ \(standard error \S+\); "
                         rf"kept {kept[name]}", out)
    assert kept == {"xor": "mlp", "line": "linear"}
    # The checkpoint beside it is the kept family's too (the MLP trained last): --resume continues linear.
    assert torch.load(f"{tmp_path / 'm.pth'}.ckpt", weights_only=True)["config"]["model"] == "linear"
    # auto's mlp is exactly the run of --model mlp alone: each family starts from the same generators.
    auto = torch.load(train(tmp_path, xor, name="xor.csv"), weights_only=True)
    alone = torch.load(train(tmp_path, xor, "--model", "mlp", name="xor.csv"), weights_only=True)
    assert auto["model_name"] == "mlp" and auto["config"]["model"] == "mlp"
    assert all(torch.equal(auto["model"][key], alone["model"][key]) for key in alone["model"])


def test_model_auto_is_for_tables_only():
    with pytest.raises(UserError, match="--model auto chooses between linear and mlp for tables"):
        parse_config(["--model", "auto", "--model_fn", "m.pth"])
    assert parse_config(["--dataset", "diabetes", "--model_fn", "m.pth"]).model == "auto"
    assert parse_config(["--model_fn", "m.pth"]).model == "mlp"


def test_a_table_with_none_and_na_levels_and_gaps_trains_with_defaults_and_predicts_new_gaps(tmp_path, capsys):
    table = loans_table(600, seed=0)
    model_fn = train(tmp_path, table[:500], "--n_epochs", "30")
    new = table[500:].drop(columns="repaid").reset_index(drop=True)
    new.loc[:4, "region"] = None  # region had no gaps in training
    new.to_csv(tmp_path / "new.csv", index=False)
    capsys.readouterr()
    predict_cli.main(["--model_fn", model_fn, str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")])
    captured = capsys.readouterr()
    assert "new.csv: 5 gaps where training had none (region: 5, read as \"other\")" in captured.err
    predicted = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    truth = table[500:]["repaid"].to_numpy()
    assert len(predicted) == 100 and (predicted["prediction"] == truth).mean() > 0.75


def test_the_predictor_applies_the_record_training_applied_on_rows_with_gaps(tmp_path):
    frame = loans_table(300, seed=2)
    model_fn = train(tmp_path, frame)
    saved = torch.load(model_fn, weights_only=True)
    dataset = load_dataset(f"csv:{tmp_path / 'loans.csv'}").prepared(saved["preprocessing"])
    test_rows = load_dataset(f"csv:{tmp_path / 'loans.csv'}").test[0]
    assert test_rows.isna().any().any()  # the test rows have gaps
    test_rows.to_csv(tmp_path / "test_rows.csv", index=False)
    predictor = Predictor(model_fn)
    as_text = read_rows(tmp_path / "test_rows.csv", columns=list(test_rows.columns))  # cells as text, as predict reads
    for rows in (test_rows, as_text):
        assert torch.equal(preprocessing.to_model_input(predictor.record, rows), dataset.test[0])
    with torch.no_grad():
        expected = predictor.model(dataset.test[0]).exp()[:, 0]
    got = torch.tensor([dict(p.top_k)[dataset.classes[0]] for p in predictor.rows(as_text, top_k=2)])
    assert torch.allclose(got, expected, atol=1e-6)


def test_auto_keeps_the_lower_validation_loss_and_says_how_sure():
    from torch import nn

    from mnist_classifier.training.model_choice import choose

    def classifier(w0: float, w1: float) -> nn.Module:
        model = nn.Sequential(nn.Linear(2, 2), nn.LogSoftmax(dim=-1))
        with torch.no_grad():
            model[0].weight.copy_(torch.tensor([[-w0, -w1], [w0, w1]]))
            model[0].bias.zero_()
        return model

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=generator)
    valid = (x, (x.sum(dim=1) > 0).long())
    crit = nn.NLLLoss()
    first, second, both, neither = classifier(2, 0), classifier(0, 2), classifier(2, 2), classifier(0, 0)
    assert choose(both, first, crit, valid).challenger_wins  # clearly better: kept
    assert not choose(neither, first, crit, valid).challenger_wins  # clearly worse
    # Each reads one of the two features the label sums: as good on average, apart row by row. The
    # lower mean still decides, one way round and not the other; the standard error shows the doubt.
    verdicts = [choose(a, b, crit, valid) for a, b in ((first, second), (second, first))]
    assert [v.challenger_wins for v in verdicts] in ([True, False], [False, True])
    assert all(abs(v.difference) < v.standard_error for v in verdicts)
    assert verdicts[0].difference == pytest.approx(-verdicts[1].difference)


def test_huge_cells_are_read_and_cut_in_messages_and_numbers_find_text_levels(tmp_path):
    """Issue 27's table cases: a cell over csv's 128 KB limit beside a gap, a 1 MB cell in a message,
    and a 2-D numeric array for a text column whose level is '7'."""
    big = "x" * 200_000
    rows = "".join(f"{i % 5},{big if i == 3 else ''},{'ab'[i % 2]}\n" for i in range(30))
    (tmp_path / "big.csv").write_text("n,note,y\n" + rows)
    dataset = load_dataset(f"csv:{tmp_path / 'big.csv'}")  # the line scan for short rows reads the big cell
    assert len(dataset.train[0]) + len(dataset.test[0]) == 30
    typo = "9" * 10 + "z" * 10**6
    (tmp_path / "typo.csv").write_text("n,y\n" + "".join(f"{i},a\n" for i in range(20)) + typo + ",b\n")
    with pytest.raises(UserError) as refused:
        load_dataset(f"csv:{tmp_path / 'typo.csv'}")
    assert len(str(refused.value)) < 300 and "(1,000,010 characters)" in str(refused.value)
    codes = pd.DataFrame({"code": ["7", "8", "7", "8"] * 10, "y": ["a", "b", "a", "b"] * 10})
    predictor = Predictor(train(tmp_path, codes, "--model", "linear", "--text_columns", "code", name="codes.csv"))
    from_text, from_number = predictor.predict([["7"]]), predictor.predict(np.array([[7.0]]))
    assert from_text[0].label == from_number[0].label == "a"
    assert from_text[0].probability == pytest.approx(from_number[0].probability)


def test_a_decimal_comma_model_reads_whole_numbers_and_grouped_thousands_as_its_file_wrote_them(tmp_path, capsys):
    rows = "".join(f"{20 + i % 9},{i % 4}5;{70 + i}.{i % 10}00,5;{'ab'[i % 3 > 0]}\n" for i in range(60))
    (tmp_path / "eu.csv").write_text("price;area;y\n" + rows)
    model_fn = str(tmp_path / "eu.pth")
    train_main(["--dataset", f"csv:{tmp_path / 'eu.csv'}", "--model_fn", model_fn, "--seed", "0", "--verbose", "0",
                "--n_epochs", "2", "--amp", "off", "--model", "linear"])
    # Whole prices and thousands grouped with points, no comma in sight: read with the model's decimal commas.
    (tmp_path / "new.csv").write_text("price;area\n12;85.591\n30;71.004\n")
    capsys.readouterr()
    predict_cli.main(["--model_fn", model_fn, str(tmp_path / "new.csv"), "--json"])
    assert "new.csv (semicolons, decimal commas)" in capsys.readouterr().err
    (tmp_path / "same.csv").write_text("price;area\n12;85591\n30;71004\n")  # the same rows, ungrouped
    ours, same = (Predictor(model_fn).predict(read_rows(tmp_path / name, predict_cli.TableOptions(usual_decimal=","),
                                                        ["price", "area"], ["price", "area"]))
                  for name in ("new.csv", "same.csv"))
    assert [p.probability for p in ours] == [p.probability for p in same]
    assert Predictor(model_fn).data_kind.values["decimal"] == ","


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_its_byte_order_mark_is_read_and_named(tmp_path, encoding):
    rows = "".join(f"{i},{i * 2},caf\u00e9 {i % 3},x{i % 2}\n" for i in range(300))
    (tmp_path / "u16.csv").write_bytes(("a,b,c,y\n" + rows).encode(encoding))
    dataset = load_dataset(f"csv:{tmp_path / 'u16.csv'}")
    assert dataset.found == f"u16.csv (read as {encoding})"
    assert len(dataset.train[1]) + len(dataset.test[1]) == 300
    assert set(pd.concat([dataset.train[0], dataset.test[0]])["c"]) == {"caf\u00e9 0", "caf\u00e9 1", "caf\u00e9 2"}


def test_a_file_that_turns_from_utf8_to_cp1252_is_refused_at_the_line(tmp_path):
    head = "a,b,c,y\n" + "".join(f"{i},{i * 2},caf\u00e9,x{i % 2}\n" for i in range(5000))
    tail = "".join(f"{i},{i * 2},caf\u00e9,x{i % 2}\n" for i in range(200))
    (tmp_path / "mixed.csv").write_bytes(head.encode() + tail.encode("cp1252"))  # the switch after 64 KB
    with pytest.raises(UserError, match=r"mixed.csv, line 5,002: not UTF-8, though line 2 is UTF-8 .*mixes two "
                                        r"encodings"):
        load_dataset(f"csv:{tmp_path / 'mixed.csv'}")


def test_a_test_csv_with_the_columns_in_another_order_is_matched_by_name(tmp_path):
    frame = loans_table(200, seed=0)
    frame.iloc[:150].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[150:].to_csv(tmp_path / "test.csv", index=False)
    frame.iloc[150:, ::-1].to_csv(tmp_path / "reversed.csv", index=False)
    as_written, reversed_ = (load_dataset(f"csv:{tmp_path / 'train.csv'}", test_csv=str(tmp_path / name))
                             for name in ("test.csv", "reversed.csv"))
    pd.testing.assert_frame_equal(as_written.test[0], reversed_.test[0])
    assert torch.equal(as_written.test[1], reversed_.test[1])
    frame.iloc[150:].drop(columns=["income"]).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(UserError, match=r"short.csv: has no column 'income', which train.csv has; a test file needs "
                                        r"the training file's columns \(in any order\)"):
        load_dataset(f"csv:{tmp_path / 'train.csv'}", test_csv=str(tmp_path / "short.csv"))


def test_a_class_name_of_megabytes_is_cut_in_its_message(tmp_path):
    frame = loans_table(100, seed=0)
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.assign(repaid=[frame["repaid"][0]] * 99 + ["x" * 2_000_000]).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(UserError) as refused:
        load_dataset(f"csv:{tmp_path / 'train.csv'}", test_csv=str(tmp_path / "test.csv"))
    assert "does not occur in the training data" in str(refused.value) and len(str(refused.value)) < 300
    frame.iloc[:20].assign(repaid="y" * 200_000).to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(UserError, match="a single class") as refused:
        load_dataset(f"csv:{tmp_path / 'one.csv'}")
    assert len(str(refused.value)) < 300
