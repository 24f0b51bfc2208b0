# ml-expert: `make demo` installs and runs the demo; `make test` installs the test needs and runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export REDIS_URL ?= redis://127.0.0.1:6379/0
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_ENABLE_ONEDNN_OPTS ?= 0

# The suite's files run on this many pytest-xdist workers (one per core of the 2-core CI machine). A
# file's tests stay together on one worker, so its module fixtures are built once; the files that
# share a session fixture (the local Ray cluster, the released text CNN) run on one worker, so it is
# built once per run; the long ones are queued first (tests/conftest.py's scheduler; no reordering by
# test count, which queued one-test files such as the Ray CLI's last).
TEST_WORKERS ?= 2

.PHONY: demo test install lint bench bench-smoke bench-install clean

# The main install (what `make demo` needs) and the test install (adds pytest, ruff and the
# benchmark extra, so the benchmark smoke tests cover FLAML too).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench,ray]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ml-expert run

test: $(VENV)/.test-installed
	PY=$(PY) scripts/ensure-redis.sh
	$(VENV)/bin/ruff check ml_expert tests benchmarks
	$(VENV)/bin/pytest -q --durations=25 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Benchmarks (benchmarks/README.md): the issue's protocol by default; override e.g.
#   make bench BENCH_BUDGET=30 BENCH_SEEDS=0 BENCH_SIZES="10000 100000"
BENCH_BUDGET ?= 60
BENCH_SEEDS ?= 0 1 2
BENCH_SIZES ?= 10000 100000 1000000

bench-install: $(VENV)/.test-installed
	$(PY) benchmarks/autogluon_env.py

bench: bench-install
	PY=$(PY) scripts/ensure-redis.sh
	$(PY) benchmarks/startup.py --runs 10
	$(PY) benchmarks/quality.py --budget $(BENCH_BUDGET) --seeds $(BENCH_SEEDS)
	$(PY) benchmarks/quality.py --budget $(BENCH_BUDGET) --seeds $(BENCH_SEEDS) --systems ml-expert \
		--ml-expert-flags=--tune --update --update-from quality --name quality-tune
	$(PY) benchmarks/overhead.py --repeats 4
	$(PY) benchmarks/inference.py
	$(PY) -m benchmarks.serving
	$(PY) benchmarks/scale.py --sizes $(BENCH_SIZES)
	$(PY) benchmarks/clustering.py
	$(PY) benchmarks/report.py

bench-smoke: $(VENV)/.test-installed
	$(VENV)/bin/pytest -q tests/test_benchmarks_smoke.py

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check ml_expert tests benchmarks

clean:
	rm -rf $(VENV) ml-expert-workspace .pytest_cache benchmarks/.work
