# Two commands on a fresh machine: `make run` and `make test`.
# Each creates .venv when missing and installs the project (editable) into it;
# the stamp files make the second call quiet and fast.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test test-slow bench figures clean
.DEFAULT_GOAL := run

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e ".[dev]"
	@touch $(VENV)/.installed-run $@

run: $(VENV)/.installed-run
	$(PY) -m train

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q -n auto

test-slow: $(VENV)/.installed-dev
	$(PY) -m pytest -q -n auto -m slow

bench: $(VENV)/.installed-dev
	$(PY) scripts/bench_discrete.py
	$(PY) scripts/bench_sliced.py
	$(PY) scripts/bench_assignment.py
	$(PY) scripts/bench_barycenter.py

figures: $(VENV)/.installed-run
	$(PY) scripts/make_figures.py

clean:
	rm -rf $(VENV) outputs multirun
