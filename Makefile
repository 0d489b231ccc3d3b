# `make train`: set up and train with the seed's defaults; `make test`: set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: setup train test lint docs data bench clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@# Where Debian's apt is available to us (optional): Fashion-MNIST's offline source, and the
	@# Chromium the browser test drives (without it that test is skipped, with the reason).
	-@need=""; [ -d /usr/share/datasets/fashion-mnist ] || need="dataset-fashion-mnist"; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	if [ -n "$$need" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq $$need) >/dev/null 2>&1 \
		|| echo "note: could not install $$need (--dataset fashion-mnist needs its mirror; the browser test is skipped)"; fi
	touch $@

bench: setup
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	$(PY) benchmarks/bench_speed.py --epochs 3 --repeats 3

setup: $(INSTALLED)

train: setup
	$(PY) train.py --model_fn model.pth

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

docs: setup  # the site under docs/, into build/site; --strict fails on a broken link or reference
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,docs]'
	$(VENV)/bin/mkdocs build --strict --site-dir build/site

data: setup
	$(PY) -m mnist_classifier.data.mnist

clean:
	rm -rf $(VENV) model.pth model.pth.history.csv model.pth.config.json
