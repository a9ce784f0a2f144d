# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv itself from
# the pinned lock file (torch==2.13.0 CPU comes from the machine's local wheel).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint bench models clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/lock.txt -e '.[export,dev,medical,surveillance,education,milvus,scale,serve,browser]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/securecmr demo

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples adapters
	$(VENV)/bin/mypy

models: $(STAMP)
	$(VENV)/bin/securecmr models export

bench: $(STAMP)
	@for s in bench/*.py; do echo "== $$s"; $(PY) $$s --json bench/results/$$(basename $$s .py).json || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
