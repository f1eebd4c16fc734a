# pawdex — the verbs people expect. Everything runs from the project's own .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: install run worker migrate test test-fast lint format compose-config clean

# Idempotent: re-running only installs what changed in pyproject.toml.
$(BIN)/pawdex: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,models,ops]'
	touch $(BIN)/pawdex

install: $(BIN)/pawdex

run: install
	$(BIN)/pawdex serve --host $(HOST) --port $(PORT)

worker: install
	$(BIN)/pawdex worker

migrate: install
	$(BIN)/pawdex migrate

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not integration" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

compose-config:
	@if docker compose version >/dev/null 2>&1; then docker compose config --quiet; \
	else docker-compose config --quiet; fi && echo "docker-compose.yml is valid"

clean:
	rm -rf var .pytest_cache .ruff_cache
