# `make train`: set up and train with the seed's defaults; `make test`: set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: setup train test lint data clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

setup: $(INSTALLED)

train: setup
	$(PY) train.py --model_fn model.pth

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

data: setup
	$(PY) -m mnist_classifier.data

clean:
	rm -rf $(VENV) model.pth
