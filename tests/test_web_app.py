"""The draw-a-digit page in a real browser: Chromium, driven by Playwright, draws digits with mouse
strokes on the canvas, and the page must show the model's answer.

The model is trained here on the same strokes rendered by Pillow (shifted, scaled and thickened at
random), so the browser's drawing, the PNG upload, the server's MNIST-style preparation and the
answer on the page are what is tested. Skipped, with the reason, where Chromium or Playwright is
missing; ``SCREENSHOT=path.png`` also saves the page after the last digit (the README's picture).
"""

import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnist_classifier.data.images import mnist_like

from .conftest import small_digit_model_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)")

# Each digit as strokes in a unit square: lists of (x, y) points, y downwards.
STROKES = {
    0: [[(0.5, 0.1), (0.25, 0.25), (0.2, 0.5), (0.25, 0.75), (0.5, 0.9), (0.75, 0.75), (0.8, 0.5), (0.75, 0.25),
         (0.5, 0.1)]],
    1: [[(0.45, 0.25), (0.55, 0.1), (0.55, 0.9)]],
    4: [[(0.6, 0.1), (0.2, 0.6), (0.8, 0.6)], [(0.6, 0.3), (0.6, 0.9)]],
    7: [[(0.2, 0.1), (0.8, 0.1), (0.4, 0.9)]],
    2: [[(0.25, 0.3), (0.4, 0.12), (0.65, 0.12), (0.75, 0.3), (0.25, 0.9), (0.8, 0.9)]],
}


def rendered(strokes, rng: np.random.Generator, side: int = 280) -> np.ndarray:
    """Pillow's drawing of the strokes, at a random place, size and thickness, prepared as MNIST."""
    scale, dx, dy = rng.uniform(0.6, 1.0), *rng.uniform(-0.15, 0.15, 2)
    image = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(image)
    for line in strokes:
        points = [(side * (0.5 + (x - 0.5) * scale + dx), side * (0.5 + (y - 0.5) * scale + dy)) for x, y in line]
        draw.line(points, fill=255, width=int(rng.integers(12, 24)), joint="curve")
    return mnist_like(image)


@pytest.fixture(scope="module")
def stroke_model(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.stack([rendered(STROKES[d], rng) for d in STROKES for _ in range(60)]))
    y = torch.tensor([d for d in STROKES for _ in range(60)])
    return small_digit_model_file(x.view(-1, 1, 28, 28), y, tmp_path_factory.mktemp("web") / "strokes.pth", steps=80)


@pytest.fixture(scope="module")
def served(stroke_model):
    """mnist-serve's app on a free loopback port, in a thread, for the module's tests."""
    import uvicorn

    from mnist_classifier.inference.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(stroke_model), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    uv.should_exit = True
    thread.join(timeout=10)


def draw(page, strokes) -> None:
    box = page.locator("#pad").bounding_box()
    for line in strokes:
        at = [(box["x"] + box["width"] * (0.15 + 0.7 * x), box["y"] + box["height"] * (0.15 + 0.7 * y))
              for x, y in line]
        page.mouse.move(*at[0])
        page.mouse.down()
        for point in at[1:]:
            page.mouse.move(*point, steps=8)
        page.mouse.up()


def test_digits_drawn_with_the_mouse_are_recognised_on_the_page(served, tmp_path):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 720})
        page.goto(served)
        page.wait_for_function("document.getElementById('about').textContent.includes('mlp')")
        recognised = []
        for digit, strokes in STROKES.items():
            page.click("#clear")
            draw(page, strokes)
            page.wait_for_function("document.body.dataset.busy === '0' && "
                                   "document.getElementById('answer').textContent !== ''", timeout=15000)
            recognised.append(page.inner_text("#answer") == str(digit))
            assert page.locator(".bar").count() == 10
        page.screenshot(path=str(tmp_path / "page.png"))
        if os.environ.get("SCREENSHOT"):
            page.screenshot(path=os.environ["SCREENSHOT"])
        browser.close()
    print(f"recognised {recognised} for digits {list(STROKES)}")
    assert sum(recognised) >= 4, f"recognised {recognised} for digits {list(STROKES)}"
