"""Texts (issue 36): ``--dataset text:PATH`` from a folder of .txt files or a CSV, the tokenizer fitted
on the training rows, the four families, and predicting from Python and ``mnist-predict``."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_classifier import Predictor
from mnist_classifier.cli.predict import predict as predict_main
from mnist_classifier.cli.train import main as train_main
from mnist_classifier.data import tokens
from mnist_classifier.errors import UserError
from mnist_classifier.inference.model_file import load_model
from mnist_classifier.kinds import load_dataset
from mnist_classifier.kinds.texts import Text
from mnist_classifier.models.text import TextCNN, TextRNN

FILLER = "the a of and to in is it that for on with as this was at by an be".split()
TOPICS = {
    "sport": "match goal team player score coach league season win referee stadium keeper".split(),
    "cooking": "recipe oven flour butter sugar bake boil salt pepper garlic onion sauce".split(),
}


def sentences(topic: str, n: int, seed: int) -> list[str]:
    """Texts of 5 to 40 words: a third of them the topic's words, the rest filler shared by both."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        length = rng.randint(5, 40)
        words = [rng.choice(TOPICS[topic]) if rng.random() < 0.35 else rng.choice(FILLER) for _ in range(length)]
        texts.append(" ".join(words).capitalize() + ".")
    return texts


def write_folder(root: Path, per_class: int = 60, seed: int = 0) -> Path:
    for i, topic in enumerate(TOPICS):
        (root / topic).mkdir(parents=True, exist_ok=True)
        for j, text in enumerate(sentences(topic, per_class, seed + i)):
            (root / topic / f"{j:03d}.txt").write_text(text, encoding="utf-8")
    return root


def write_csv(path: Path, per_class: int = 60, seed: int = 0) -> Path:
    rows = [(f"{i}-{j}", text, topic) for i, topic in enumerate(TOPICS)
            for j, text in enumerate(sentences(topic, per_class, seed + i))]
    random.Random(seed).shuffle(rows)
    path.write_text("id,review,label\n" + "".join(f'{a},"{b}",{c}\n' for a, b, c in rows), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Runs here cache their token ids under tmp_path/data (--data_dir's default), not the checkout's."""
    monkeypatch.chdir(tmp_path)


def train(args: list[str], capsys) -> str:
    train_main(["--seed", "0", "--amp", "off", *args])
    return capsys.readouterr().out


def linear_model(tmp_path: Path, capsys, n_epochs: int = 15) -> Path:
    """A linear model trained on the two topics' folder, saved as tmp_path/m.pth."""
    train(["--dataset", f"text:{write_folder(tmp_path / 'topics')}", "--model", "linear", "--n_epochs", str(n_epochs),
           "--batch_size", "16", "--model_fn", str(tmp_path / "m.pth")], capsys)
    return tmp_path / "m.pth"


def test_a_folder_of_texts_trains_and_its_first_line_says_what_it_found(tmp_path, capsys):
    root = write_folder(tmp_path / "topics")
    out = train(["--dataset", f"text:{root}", "--model", "linear", "--n_epochs", "15", "--batch_size", "16",
                 "--model_fn", str(tmp_path / "m.pth")], capsys)
    first = out.splitlines()[0]
    assert re.fullmatch(r"text folder topics: 2 classes \(cooking 60, sport 60\), 120 texts; median \d+ tokens; "
                        r"vocabulary [\d,]+ \(trained on the training rows\); cut at \d+ tokens \(\d+\.\d% of texts "
                        r"longer\)", first), first
    accuracy = float(re.search(r"Test accuracy: ([\d.]+)%", out).group(1))
    assert accuracy >= 90  # 24 test texts: at most 2 wrong
    predictor = Predictor(tmp_path / "m.pth")
    [sport, cooking] = predictor.predict(["The keeper saved the goal and the team won the match",
                                          "Bake the flour with butter and sugar in the oven"])
    assert (sport.label, cooking.label) == ("sport", "cooking")
    assert predictor.predict("referee")[0].label == "sport"  # one string is one text


@pytest.mark.parametrize("family", ["mlp", "rnn", "cnn"])
def test_each_family_trains_on_texts_and_its_file_rebuilds(family, tmp_path, capsys):
    root = write_folder(tmp_path / "topics", per_class=40)
    out = train(["--dataset", f"text:{root}", "--model", family, "--n_epochs", "12", "--batch_size", "16",
                 "--lr", "3e-3", "--model_fn", str(tmp_path / "m.pth")], capsys)
    assert float(re.search(r"Test accuracy: ([\d.]+)%", out).group(1)) >= 75  # 16 test texts
    model, saved = load_model(tmp_path / "m.pth")
    assert saved["model_name"] == family
    assert Predictor(tmp_path / "m.pth").predict(["salt pepper garlic onion sauce recipe"])[0].label == "cooking"


def test_a_csv_of_texts_finds_its_text_column_and_names_a_wrong_one(tmp_path, capsys):
    path = write_csv(tmp_path / "reviews.csv")
    out = train(["--dataset", f"text:{path}", "--model", "linear", "--target", "label", "--n_epochs", "10",
                 "--batch_size", "16", "--model_fn", str(tmp_path / "m.pth")], capsys)
    assert out.startswith("text reviews.csv ('review', labels 'label'): 2 classes")
    with pytest.raises(SystemExit):
        train_main(["--dataset", f"text:{path}", "--text_column", "body", "--model_fn", str(tmp_path / "n.pth")])
    assert "no column 'body' (columns: id, review, label); choose one with --text_column" in capsys.readouterr().err


def test_bad_texts_are_counted_or_refused_in_one_line(tmp_path):
    root = write_folder(tmp_path / "topics", per_class=20)
    (root / "sport" / "empty.txt").write_text("")
    (root / "sport" / "binary.txt").write_bytes(b"\x00\x01\x02PNG\x00")
    (root / "cooking" / "notes.md").write_text("not a .txt")
    (root / "cooking" / "odd.txt").write_text("\u200bsalt\u200b 🍳 שלום مرحبا", encoding="utf-8")
    dataset = load_dataset(f"text:{root}")
    assert "42 texts, 1 empty, 1 files skipped (not text), 1 files ignored (not .txt)" in dataset.found
    assert any("binary.txt: not text (it holds NUL bytes)" in note for note in dataset.notes)
    (tmp_path / "one" / "only").mkdir(parents=True)
    (tmp_path / "one" / "only" / "a.txt").write_text("hello")
    with pytest.raises(UserError, match="only one class"):
        load_dataset(f"text:{tmp_path / 'one'}")
    (tmp_path / "one" / "other").mkdir()
    with pytest.raises(UserError, match="no texts in this class folder"):
        load_dataset(f"text:{tmp_path / 'one'}")
    with pytest.raises(UserError, match="no such folder or file"):
        load_dataset(f"text:{tmp_path / 'nowhere'}")


def test_rows_without_a_label_are_left_out_and_counted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "".join(f"text number {i} about {'goals' if i % 2 else 'ovens'},{i % 2}\n"
                                             for i in range(40)) + "a text with no label,\n")
    dataset = load_dataset(f"text:{path}")
    assert "40 texts" in dataset.found and "1 rows without a label left out" in dataset.found


def test_the_tokenizer_is_fitted_on_the_training_rows_alone(tmp_path):
    dataset = load_dataset(f"text:{write_folder(tmp_path / 'topics', per_class=20)}")
    dataset.train = (dataset.train[0] + ["zyzzyva zyzzyva zyzzyva"], torch.cat([dataset.train[1], torch.tensor([0])]))
    fitted = Text.fit_dataset(dataset, torch.arange(len(dataset) - 1))
    assert "zyzzyva" not in fitted.tokenizer.get_vocab()
    assert "zyzzyva" in Text.fit_dataset(dataset).tokenizer.get_vocab()  # with the row: learned


def test_token_rows_pad_each_batch_to_its_longest_and_bucket_by_length():
    texts = [" ".join(["word"] * n) for n in range(1, 201)]
    record = Text.fit(texts)
    rows = record.prepare_rows(texts)
    assert rows.tokens.dtype == np.uint16 and rows.tokens.nbytes == 2 * len(rows.tokens)
    batch = rows[np.array([0, 4])]
    assert batch.shape == (2, 5) and batch[0, 1:].eq(tokens.PAD_ID).all() and batch[1].ne(tokens.PAD_ID).all()
    order = rows.epoch_order(torch.Generator().manual_seed(0), batch_size=20)
    assert sorted(order.tolist()) == list(range(200))
    spans = [int(np.ptp(rows.lengths[b.numpy()])) for b in order.split(20)]
    assert max(spans) < 20  # each batch is 20 neighbours in length, not 20 of any length


def test_the_rnn_and_cnn_read_a_padded_text_as_they_read_it_alone():
    torch.manual_seed(0)
    x = torch.randint(2, 50, (2, 9))
    x[1, 6:] = tokens.PAD_ID
    for model in (TextRNN(50, 3, n_layers=2).eval(), TextCNN(50, 3, filters=4).eval()):
        assert torch.allclose(model(x)[1], model(x[1:, :6])[0], atol=1e-5)


def test_mnist_predict_reads_txt_files_and_a_text_column(tmp_path, capsys):
    linear_model(tmp_path, capsys)
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a.txt").write_text("The coach and the team won the league", encoding="cp1252")
    table = tmp_path / "new.csv"
    table.write_text('id,review\n1,"sugar butter flour bake"\n2,"the referee ended the match"\n')
    results = predict_main(["--model_fn", str(tmp_path / "m.pth"), str(tmp_path / "new"), str(table),
                            "--out", str(tmp_path / "out.csv")])
    assert [r["label"] for r in results] == ["sport", "cooking", "sport"]
    written = (tmp_path / "out.csv").read_text().splitlines()
    assert written[0].startswith("file,prediction") and len(written) == 4


KOREAN_STEMS = {
    "좋음": ["배송", "포장", "품질", "가격", "디자인"],
    "나쁨": ["고장", "불량", "환불", "냄새", "파손"],
}
KOREAN_PARTICLES = ["이", "은", "도", "만", "까지"]
KOREAN_ENDINGS = {"좋음": ["좋아요", "만족해요", "최고예요"], "나쁨": ["별로예요", "실망이에요", "최악이에요"]}


def korean_reviews(label: str, n: int, seed: int) -> list[str]:
    """Shopping reviews written for this test: a noun with a particle, then a verdict."""
    rng = random.Random(seed)
    return [" ".join(f"{rng.choice(KOREAN_STEMS[label])}{rng.choice(KOREAN_PARTICLES)} "
                     f"{rng.choice(KOREAN_ENDINGS[label])}" for _ in range(rng.randint(1, 4))) for _ in range(n)]


def test_korean_texts_train_predict_and_are_cut_into_subwords(tmp_path, capsys):
    path = tmp_path / "reviews.tsv"
    rows = [(text, label) for i, label in enumerate(KOREAN_STEMS) for text in korean_reviews(label, 80, i)]
    random.Random(0).shuffle(rows)
    path.write_text("document\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    out = train(["--dataset", f"text:{path}", "--model", "linear", "--n_epochs", "15", "--batch_size", "16",
                 "--model_fn", str(tmp_path / "ko.pth")], capsys)
    assert float(re.search(r"Test accuracy: ([\d.]+)%", out).group(1)) >= 90
    predictor = Predictor(tmp_path / "ko.pth")
    assert predictor.predict("포장은 최고예요")[0].label == "좋음"
    # An eojeol the training texts never had (a stem with two particles) is cut into known subwords,
    # never one unknown token.
    tokenizer = predictor.data_kind.tokenizer
    pieces = tokenizer.encode("품질까지도", add_special_tokens=False).tokens
    assert len(pieces) >= 2 and tokens.UNK not in pieces and "".join(pieces) == "품질까지도"


def test_a_csv_table_of_free_text_alone_points_to_text(tmp_path, capsys):
    path = write_csv(tmp_path / "reviews.csv")
    with pytest.raises(SystemExit):
        train_main(["--dataset", f"csv:{path}", "--target", "label", "--model_fn", str(tmp_path / "m.pth")])
    assert f"'review' is free text: train on it as texts with --dataset text:{path}" in capsys.readouterr().err


def test_the_server_answers_a_text_and_its_page_offers_a_text_box(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from mnist_classifier.inference.server import create_app

    linear_model(tmp_path, capsys)
    client = TestClient(create_app(tmp_path / "m.pth"))
    assert client.get("/model").json()["takes"] == "texts"
    assert 'id="writing"' in client.get("/").text
    answer = client.post("/predict", json={"text": "the goal keeper and the referee"}).json()
    assert answer["label"] == "sport" and "referee" in answer["model_input"]
    assert set(answer["probabilities"]) == {"cooking", "sport"}
    assert client.post("/predict", json={"pixels": [[0.0]]}).status_code == 422
    assert client.post("/predict", json={"text": 3}).status_code == 422
    upload = client.post("/predict", files={"file": ("a.png", b"\x89PNG", "image/png")})
    assert upload.status_code == 415 and "send JSON" in upload.json()["detail"]


def test_mnist_evaluate_lists_the_worst_mistakes_as_text(tmp_path, capsys):
    from mnist_classifier.cli.evaluate import evaluate_model_file

    root = write_folder(tmp_path / "topics", per_class=30)
    train(["--dataset", f"text:{root}", "--model", "linear", "--n_epochs", "1", "--batch_size", "16",
           "--lr", "1e-4", "--model_fn", str(tmp_path / "m.pth")], capsys)
    metrics = evaluate_model_file(str(tmp_path / "m.pth"), tmp_path / "report")
    assert metrics["unit"] == "texts" and metrics["n_test"] == 12
    assert (tmp_path / "report" / "confusion_matrix.png").exists()
    mistakes = (tmp_path / "report" / "worst_mistakes.txt").read_text()
    assert re.match(r"1\. true (sport|cooking), predicted (sport|cooking) \(\d+\.\d%\)\n   \w", mistakes)


@pytest.mark.parametrize("family", ["linear", "rnn", "cnn"])
def test_a_text_model_exports_on_token_ids_with_its_tokenizer_beside(family, tmp_path, capsys):
    import json

    from mnist_classifier.inference.export import export_model, onnx_runner

    root = write_folder(tmp_path / "topics", per_class=20)
    train(["--dataset", f"text:{root}", "--model", family, "--n_epochs", "1", "--batch_size", "16",
           "--model_fn", str(tmp_path / "m.pth")], capsys)
    exported = export_model(tmp_path / "m.pth", "onnx", tmp_path / "m.onnx")
    description = json.loads(exported.sidecar.read_text())
    assert description["input"]["dtype"] == "int64" and description["input"]["shape"] == ["batch", "length"]
    tokenizer = (tmp_path / "m.onnx.tokenizer.json").read_text()
    assert tokenizer == Predictor(tmp_path / "m.pth").record["tokenizer"]
    # A consumer with the tokenizer alone: ids of one short text, padded to the export's least length.
    from tokenizers import Tokenizer

    ids = Tokenizer.from_str(tokenizer).encode("salt and sugar", add_special_tokens=False).ids
    x = torch.tensor([ids + [0] * (description["input"]["min_length"] - len(ids))])
    run = onnx_runner(exported.path.read_bytes())
    model, _ = load_model(tmp_path / "m.pth")
    assert torch.allclose(run(x), model(x), atol=1e-4)
    export_model(tmp_path / "m.pth", "torchscript", tmp_path / "m.pt")


def test_a_resumed_text_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path, monkeypatch, capsys):
    import signal

    from .conftest import beside, signal_after_epoch

    root = write_folder(tmp_path / "topics", per_class=30)
    common = ["--dataset", f"text:{root}", "--model", "cnn", "--n_epochs", "4", "--batch_size", "16"]
    train([*common, "--model_fn", str(tmp_path / "whole.pth")], capsys)
    signal_after_epoch(monkeypatch, 2, signal.SIGINT)
    with pytest.raises(SystemExit):
        train([*common, "--model_fn", str(tmp_path / "split.pth")], capsys)
    monkeypatch.undo()
    train_main(["--resume", str(beside(tmp_path / "split.pth", "checkpoint"))])
    whole, split = (torch.load(tmp_path / name, weights_only=True)["model"] for name in ("whole.pth", "split.pth"))
    assert all(torch.equal(whole[name], split[name]) for name in whole)


def test_init_from_a_text_model_keeps_its_tokenizer(tmp_path, capsys):
    first = write_folder(tmp_path / "first", per_class=30, seed=0)
    second = write_folder(tmp_path / "second", per_class=30, seed=5)
    train(["--dataset", f"text:{first}", "--model", "rnn", "--n_epochs", "2", "--batch_size", "16",
           "--model_fn", str(tmp_path / "a.pth")], capsys)
    out = train(["--dataset", f"text:{second}", "--model", "rnn", "--n_epochs", "2", "--batch_size", "16",
                 "--init_from", str(tmp_path / "a.pth"), "--model_fn", str(tmp_path / "b.pth")], capsys)
    assert f"(the tokenizer of --init_from {tmp_path / 'a.pth'})" in out.splitlines()[0]
    assert re.search(r"Started from .*a\.pth: (\d+) of \1 tensors loaded", out)
    a, b = (Predictor(tmp_path / name).record["tokenizer"] for name in ("a.pth", "b.pth"))
    assert a == b


def test_the_classifier_fits_raw_documents_and_saves_a_text_model(tmp_path):
    from mnist_classifier.estimators import Classifier

    texts = sentences("sport", 60, 0) + sentences("cooking", 60, 1)
    labels = ["sport"] * 60 + ["cooking"] * 60
    classifier = Classifier(model="linear", n_epochs=15, batch_size=16, random_state=0, verbose=0)
    classifier.fit(texts, labels)
    assert classifier.score(texts, labels) > 0.9
    assert list(classifier.predict(["the referee and the goal", "butter and sugar"])) == ["sport", "cooking"]
    with pytest.raises(ValueError, match="fitted on texts"):
        classifier.predict(np.zeros((2, 3)))
    classifier.save(tmp_path / "c.pth")
    assert Predictor(tmp_path / "c.pth").predict("the keeper")[0].label == "sport"


def test_the_default_model_for_texts_trains_both_bags_and_keeps_one(tmp_path, capsys):
    root = write_folder(tmp_path / "topics", per_class=40)
    out = train(["--dataset", f"text:{root}", "--batch_size", "16", "--model_fn", str(tmp_path / "m.pth")], capsys)
    assert "--model auto: training linear and mlp on the same rows" in out
    assert re.search(r"--model auto: .*kept (linear|mlp)", out)
    assert float(re.search(r"Test accuracy: ([\d.]+)%", out).group(1)) >= 75


TRICKY = ["ΟΔΥΣΣΕΥΣ ΣΑΣ Σ", "İstanbul ǅ ß ẞ ﬁ ＡＢＣ １２３ ㈱ ℌ Ω K Å", "a\u200bb\u00adc\ufeffd\u200d\u2060e",
          "한국어 리뷰입니다 ＫＯＲＥＡ ㄱㅏ", "שלום עולם مرحبا بالعالم ١٢٣", "🙂👍🏽 👨‍👩‍👧 ❤️",
          "Ⅻ ½ ² ㎏ ῼ ΐ ǈ", "e\u0301 é Ǆ"]


def test_python_normalises_texts_as_the_saved_tokenizer_does():
    normalizer = tokens.new_tokenizer().normalizer
    for text in TRICKY:
        assert tokens.normalized(text) == normalizer.normalize_str(text), text


def test_a_long_texts_head_gives_the_first_ids_its_whole_text_gives():
    rng = random.Random(0)
    words = sentences("sport", 50, 0) + sentences("cooking", 50, 1)
    record = Text.fit(words)
    whole = tokens.Encoder(record.tokenizer)
    long = [" ".join(rng.choices(words, k=400)), "x" * 5000 + " tail", "".join(rng.choices(words, k=300)),
            " ".join("".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(3)) for _ in range(3000))]
    for cut in (8, 64, 512):
        encoder = tokens.Encoder(record.tokenizer, cut)
        assert encoder.ids(long) == [ids[:cut] for ids in whole.ids(long)]


def test_a_second_run_reads_the_token_cache_and_an_edited_text_is_encoded_again(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "topics", per_class=20)
    encoded = []
    rows = tokens.Encoder.rows
    monkeypatch.setattr(tokens.Encoder, "rows", lambda self, texts, *a, **k: encoded.append(len(texts)) or
                        rows(self, texts, *a, **k))
    first = load_dataset(f"text:{root}", str(tmp_path / "data")).prepared()
    assert encoded == [32, 8] and len(list((tmp_path / "data" / "text-cache").glob("*/*.tokens.npy"))) == 2
    again = load_dataset(f"text:{root}", str(tmp_path / "data")).prepared(first.preprocessing)
    assert encoded == [32, 8]  # read from the cache
    assert np.array_equal(again.train[0].tokens, first.train[0].tokens)
    (root / "sport" / "000.txt").write_text("an edited text about the referee")
    load_dataset(f"text:{root}", str(tmp_path / "data")).prepared(first.preprocessing)
    assert encoded[2:] == [32]  # only the split that changed


def test_token_ids_larger_than_the_memory_share_are_read_from_the_file(tmp_path, monkeypatch, capsys):
    from mnist_classifier.data import token_cache

    root = write_folder(tmp_path / "topics")
    args = ["--dataset", f"text:{root}", "--model", "linear", "--n_epochs", "3", "--batch_size", "16"]
    train([*args, "--model_fn", str(tmp_path / "memory.pth")], capsys)  # fills the cache
    monkeypatch.setattr(token_cache, "MEMORY_SHARE", 0.0)
    dataset = load_dataset(f"text:{root}", "data").prepared(torch.load(tmp_path / "memory.pth")["preprocessing"])
    assert isinstance(dataset.train[0].tokens, np.memmap)
    train([*args, "--model_fn", str(tmp_path / "disk.pth")], capsys)
    from_disk, from_memory = (torch.load(tmp_path / f"{name}.pth")["model"] for name in ("disk", "memory"))
    assert from_disk.keys() == from_memory.keys()
    assert all(torch.equal(from_disk[key], from_memory[key]) for key in from_disk)  # the same batches


def test_a_50_mb_text_is_read_up_to_the_limit_and_predicted_at_once(tmp_path, capsys):
    root = write_folder(tmp_path / "topics")
    (root / "sport" / "huge.txt").write_text("goal referee match " * 2_700_000)  # 51 MB
    out = train(["--dataset", f"text:{root}", "--model", "linear", "--n_epochs", "5", "--batch_size", "16",
                 "--model_fn", str(tmp_path / "m.pth")], capsys)
    assert "1 longer than 200,000 characters read up to there" in out.splitlines()[0]
    started = time.perf_counter()
    [answer] = Predictor(tmp_path / "m.pth").predict("the keeper and the goal " * 2_000_000)  # 48 MB
    assert answer.label == "sport" and time.perf_counter() - started < 10


def test_a_text_in_a_script_training_never_saw_is_answered_with_a_note(tmp_path, capsys):
    linear_model(tmp_path, capsys, n_epochs=3)
    (tmp_path / "ask").mkdir()
    (tmp_path / "ask" / "arabic.txt").write_text("مرحبا بالعالم هذا نص عربي", encoding="utf-8")
    (tmp_path / "ask" / "english.txt").write_text("the referee and the goal", encoding="utf-8")
    predict_main(["--model_fn", str(tmp_path / "m.pth"), str(tmp_path / "ask")])
    captured = capsys.readouterr()
    assert re.search(r"mnist-predict: note: 1 of 2 texts are mostly characters the training texts never had "
                     r"\(another script\?\), so the answer rests on little: 'مرحبا .*' is \d+ unknown tokens of \d+",
                     captured.err), captured.err
    assert "english.txt" in captured.out and "arabic.txt" in captured.out
    with pytest.warns(UserWarning, match="the text is mostly characters"):
        Predictor(tmp_path / "m.pth").predict("日本語の文章です")


def test_scikit_learn_cross_validates_the_classifier_on_raw_documents():
    from sklearn.model_selection import cross_val_score

    from mnist_classifier.estimators import Classifier

    texts = [t for pair in zip(sentences("sport", 45, 0), sentences("cooking", 45, 1), strict=True) for t in pair]
    labels = ["sport", "cooking"] * 45
    scores = cross_val_score(Classifier(model="linear", n_epochs=15, batch_size=16, random_state=0, verbose=0),
                             texts, labels, cv=3)
    assert len(scores) == 3 and scores.min() >= 0.8  # 30 texts a fold; the full fit scores above 0.9
