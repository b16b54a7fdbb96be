# The two commands: `make run` (Pulse on SQLite, nothing else to start) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run demo test test-postgres lint browser clean

# The tests that exercise the store, run again on PostgreSQL by `make test-postgres`.
POSTGRES_TESTS ?= tests/test_sequence.py tests/test_event_fields.py tests/test_writer.py \
	tests/test_track.py tests/test_live_stream.py tests/ui/test_websites.py \
	tests/ui/test_live_page.py tests/ui/test_accounts.py tests/ui/test_tokens.py

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/python app.py serve

demo: $(BIN)/.installed
	$(BIN)/python app.py demo

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "could not install chromium: browser tests will be skipped"; \
	  else echo "chromium is missing (apt-get install chromium chromium-driver): browser tests will be skipped"; fi; }

test: $(BIN)/.installed browser
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest
	$(MAKE) test-postgres

test-postgres: $(BIN)/.installed
	PULSE_TEST_DATABASE=postgresql $(BIN)/pytest -q $(POSTGRES_TESTS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
