import io
import json
import os
import sys

import pytest
from PIL import Image

from mnist_classifier.cli.predict import main

from .conftest import render_digit
from .test_predictor import png_header_only


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr()


def test_json_for_files_and_folders(digit_model, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    render_digit(4, 40, (20, 10)).save(tmp_path / "mine" / "a.png")
    render_digit(7, 50, (5, 5)).convert("RGB").save(tmp_path / "mine" / "b.jpg")
    render_digit(2, 36, (35, 25)).save(tmp_path / "two.png")
    main(["--model_fn", str(digit_model), "--json", "--top_k", "2", str(tmp_path / "mine"), str(tmp_path / "two.png")])
    results = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in results] == ["4", "7", "2"]
    assert set(results[0]) == {"source", "label", "probability", "top_k"} and len(results[0]["top_k"]) == 2
    assert results[0]["top_k"][0]["label"] == "4" and results[0]["source"].endswith("a.png")


def test_standard_input_and_show(digit_model, tmp_path, capsys, monkeypatch):
    png = io.BytesIO()
    render_digit(5, 44, (30, 20)).save(png, format="PNG")
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": io.BytesIO(png.getvalue())})())
    main(["--model_fn", str(digit_model), "--show", str(tmp_path / "seen"), "-"])
    assert capsys.readouterr().out.startswith("-: 5 (5 ")
    (preview,) = (tmp_path / "seen").iterdir()
    assert preview.name == "000_stdin_as_5.png" and Image.open(preview).size == (28, 28)


def test_standard_input_keeps_its_place_among_the_files(digit_model, tmp_path, capsys, monkeypatch):
    png = io.BytesIO()
    render_digit(5, 44, (30, 20)).save(png, format="PNG")
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": io.BytesIO(png.getvalue())})())
    render_digit(4, 40, (20, 10)).save(tmp_path / "a.png")
    render_digit(7, 50, (5, 5)).save(tmp_path / "b.png")
    main(["--model_fn", str(digit_model), str(tmp_path / "a.png"), "-", str(tmp_path / "b.png")])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(tmp_path / "a.png"), "-", str(tmp_path / "b.png")]
    assert [line.split(": ")[1][0] for line in lines] == ["4", "5", "7"]


def test_one_bad_file_in_a_folder_costs_only_itself(digit_model, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    render_digit(4, 40, (20, 10)).save(tmp_path / "mine" / "a.png")
    (tmp_path / "mine" / "b.png").write_bytes(b"not a png")
    render_digit(7, 50, (5, 5)).save(tmp_path / "mine" / "c.png")
    code, captured = run(["--model_fn", str(digit_model), str(tmp_path / "mine")], capsys)
    assert code == 1
    assert [line.split(": ")[1][0] for line in captured.out.splitlines()] == ["4", "7"]
    assert captured.err.splitlines() == [f"mnist-predict: error: {tmp_path / 'mine' / 'b.png'}: not an image "
                                         "this program can read (UnidentifiedImageError)",
                                         "mnist-predict: 1 of 3 images could not be read; the others were predicted"]
    code, captured = run(["--model_fn", str(digit_model), "--json", str(tmp_path / "mine")], capsys)
    results = json.loads(captured.out)
    assert code == 1 and [r.get("label") for r in results] == ["4", None, "7"]
    assert results[1]["error"].endswith("b.png: not an image this program can read (UnidentifiedImageError)")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent.png", "absent.png: no such file"),
        (lambda d: (d / "x.png").write_text("text") and d / "x.png", "x.png: not an image"),
        (lambda d: Image.new("L", (30, 30), 255).save(d / "w.png") or d / "w.png", "w.png: the image is empty"),
        (lambda d: Image.new("L", (30, 30), 0).save(d / "k.png") or d / "k.png", "k.png: the image is empty"),
        (lambda d: png_header_only(d / "bomb.png", 20000, 20000), "bomb.png: refused, too many pixels"),
        (lambda d: os.mkfifo(d / "pipe.png") or d / "pipe.png", "pipe.png: not a regular file"),
    ],
)
def test_bad_images_are_one_line_errors(digit_model, tmp_path, capsys, make, message):
    code, captured = run(["--model_fn", str(digit_model), str(make(tmp_path))], capsys)
    assert code == 2 and message in captured.err and len(captured.err.strip().splitlines()) == 1


def test_a_model_file_that_is_not_ours_is_refused(tmp_path, capsys):
    (tmp_path / "model.pth").write_bytes(b"\x00" * 64)
    render_digit(1, 40, (10, 10)).save(tmp_path / "one.png")
    code, captured = run(["--model_fn", str(tmp_path / "model.pth"), str(tmp_path / "one.png")], capsys)
    assert code == 2 and "model.pth: not a readable model file" in captured.err


def test_a_name_too_long_is_one_line(digit_model, tmp_path, capsys):
    render_digit(4, 40, (20, 10)).save(tmp_path / "a.png")
    code, captured = run(["--model_fn", str(digit_model), str(tmp_path / "a.png"), str(tmp_path / ("x" * 300))],
                         capsys)
    assert code == 1 and captured.out.startswith(f"{tmp_path / 'a.png'}: 4")
    assert "File name too long" in captured.err
    code, captured = run(["--model_fn", "y" * 300, str(tmp_path / "a.png")], capsys)
    assert code == 2 and "File name too long" in captured.err and len(captured.err.splitlines()) == 1


def test_when_no_image_can_be_read_it_says_so(digit_model, tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"no")
    (tmp_path / "b.png").write_bytes(b"no")
    code, captured = run(["--model_fn", str(digit_model), str(tmp_path / "a.png"), str(tmp_path / "b.png")], capsys)
    assert code == 1 and captured.err.splitlines()[-1] == "mnist-predict: none of the 2 images could be read"


def test_show_writes_previews_for_class_names_with_slashes(digit_model, tmp_path, capsys):
    import torch

    payload = torch.load(digit_model, weights_only=True)
    names = ["T-shirt/top" if c == "4" else c for c in payload["dataset"]["classes"]]
    payload["dataset"]["classes"] = names
    torch.save(payload, tmp_path / "clothes.pth")
    render_digit(4, 40, (20, 10)).save(tmp_path / "a.png")
    main(["--model_fn", str(tmp_path / "clothes.pth"), "--show", str(tmp_path / "seen"), str(tmp_path / "a.png")])
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'a.png'}: T-shirt/top")
    assert [p.name for p in (tmp_path / "seen").iterdir()] == ["000_a_as_T-shirt-top.png"]
