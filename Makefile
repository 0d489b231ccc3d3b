# `make train`: set up and train with the seed's defaults; `make test`: set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: setup train test lint data bench clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@# Fashion-MNIST's offline source, where Debian's apt is available to us; optional.
	-@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
		|| echo "note: could not install dataset-fashion-mnist; --dataset fashion-mnist needs its mirror"; fi
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

data: setup
	$(PY) -m mnist_classifier.data.mnist

clean:
	rm -rf $(VENV) model.pth
