# The two commands users run: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test check lint typecheck unit install bench clean demo-attacks

# Installs exactly the pinned, hashed versions of requirements.lock (every archive checked
# against its sha256), then Bastion itself without letting pip resolve anything else.
# Re-runs when pyproject.toml or the lock file changes.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Start the demo: HTTPS on 127.0.0.1:8443, redirect on :8080, admin on :9901.
run: $(STAMP)
	$(BIN)/bastion demo

## Lint, type check and run every test (what CI runs).
test: $(STAMP)
	bash scripts/system-deps.sh
	$(BIN)/ruff format --check bastion tests bench examples
	$(BIN)/ruff check bastion tests bench examples
	$(BIN)/mypy
	$(BIN)/python -m pytest --cov --cov-report=term

## Replay the seed's threats against a running `make run`, then compare scans with and without Bastion.
demo-attacks: $(STAMP)
	$(BIN)/bastion demo attacks

## Benchmarks against nginx and the direct upstream (installs nginx and wrk from Debian).
bench: $(STAMP)
	bash bench/run.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage

.PHONY: lock audit-deps

## Pin every dependency installed in .venv (pyproject's tree only) with sha256 hashes.
## After changing dependencies in pyproject.toml: `make lock`, then commit both files. Resolves
## pyproject.toml into .venv first (the stamp installs from the old lock, which cannot know new
## dependencies), writes the lock, and checks that it installs as a whole with --require-hashes.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev,redis,postgres]'
	$(BIN)/python scripts/lock_deps.py requirements.lock
	$(BIN)/python -m pip install --quiet --dry-run --ignore-installed --require-hashes -r requirements.lock
	touch $(STAMP)

## Check requirements.lock for known vulnerabilities. pip-audit asks PyPI's vulnerability API,
## so this needs network access to pypi.org; --strict fails when a package could not be checked.
audit-deps: $(STAMP)
	test -x $(BIN)/pip-audit || $(BIN)/python -m pip install --quiet pip-audit
	$(BIN)/pip-audit --strict --disable-pip --require-hashes -r requirements.lock --progress-spinner off
