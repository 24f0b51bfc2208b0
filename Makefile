# ml-expert: `make demo` installs and runs the demo; `make test` installs the test needs and runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export REDIS_URL ?= redis://127.0.0.1:6379/0
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_ENABLE_ONEDNN_OPTS ?= 0

.PHONY: demo test install lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ml-expert run

test: install
	PY=$(PY) scripts/ensure-redis.sh
	$(VENV)/bin/ruff check ml_expert tests benchmarks
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check ml_expert tests benchmarks

clean:
	rm -rf $(VENV) ml-expert-workspace .pytest_cache
