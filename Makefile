# chatmux developer tasks. CI overrides PYTHON (see .ci/run).
PYTHON ?= .venv/bin/python
VENV_PY ?= python3.11

.PHONY: install test lint run

install:
	test -x .venv/bin/python || $(VENV_PY) -m venv .venv
	.venv/bin/python -m pip install -q torch==2.13.0 && .venv/bin/python -m pip install -q -e '.[dev,local]'

test:
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .

run:
	.venv/bin/chatmux run
