# One command on a fresh machine: `make demo` or `make test` (both install first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= small
# Python keeps the byte code it compiles (see "Byte code" below)
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup test demo bench lint clean

setup: $(STAMP)

# Idempotent: the stamp makes a second run take well under a second.
# torch is installed first, by pip, and pinned by constraints.txt: pip's own configuration (its index and
# find-links) picks the build, the CPU one here; if the venv already holds a torch (a GPU user's own CUDA
# build), it is kept as it is. uv installs the rest, keeping that torch (an installed package that satisfies a
# requirement stays): it resolves and downloads in parallel (README, "Development", has the times).
# Byte code: neither pip (--no-compile: it compiles one file after the other) nor uv compiles at install. Python
# compiles a module at its first import and keeps the .pyc, so only what is imported is ever compiled (a few
# thousand of the environment's 23,000 files; compiling them all took 88 s on 2 cores). That needs .pyc files
# to be written: where PYTHONDONTWRITEBYTECODE is set (this project's CI machines set it), none ever was, and
# every process compiled torch, Lightning and transformers again from source, 29 s of CPU for `import lightning`
# instead of 11 s, in each test worker and each process a test starts. So make's commands run without it
# (`unexport` above): the venv and src/ keep their byte code, as Python's default does.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q --no-compile -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m uv --version >/dev/null 2>&1 || $(BIN)/pip install -q "uv>=0.5"
	$(BIN)/python -m uv pip install -q --python $(BIN)/python -e ".[all,dev]"
	touch $(STAMP)

# In parallel, one worker per core (pytest-xdist); a test file stays on one worker, so its module fixtures are built
# once (tests/once.py builds the session fixtures several files share once per run). --no-loadscope-reorder:
# files go out in collection order, which tests/conftest.py sorts longest first (xdist would otherwise send the
# files with the most tests first, and a long end-to-end file of 2 tests ran alone at the end). tests/test_docs.py
# builds the docs. --durations=30: the slowest tests, to see where the time goes.
test: setup
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=30 tests

# The docs site into site/, strict (a broken link or a public API name that no longer resolves fails it). No
# --quiet: it hides the warnings that strict mode fails on.
.PHONY: docs
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The whole study on the synthetic corpus (under 10 minutes on 2 CPU cores). A second `make demo` skips every
# experiment that is already complete. The study prints the key-results table at the end.
demo: setup
	$(BIN)/emoshift synth demo-data --scale $(SCALE) --seed 0
	$(BIN)/emoshift study configs/study.yaml --corpus ravdess=demo-data/ravdess --corpus crema-d=demo-data/crema-d --profile demo -o demo-out

bench: setup
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_predict.py

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) demo-out demo-data .pytest_cache .mypy_cache .ruff_cache
