# The two commands of the README:
#   make demo   set up, then run one whole transmission on embedded defaults
#   make test   set up (system services too, as root), then lint + the whole test suite
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test setup setup-test lint format bench clean

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

demo: setup
	$(BIN)/bbdirect demo

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup-test lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-out
