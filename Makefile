# The two commands of the README:
#   make demo   set up, then run one whole transmission on embedded defaults
#   make test   set up (system services too, as root), then lint + the whole test suite
VENV := .venv
BIN := $(VENV)/bin
# What `make typecheck` checks (see [tool.mypy]); every path listed here is type-clean.
TYPECHECK_PATHS := direct ccda_mapper fhir_bridge bbdirect

.PHONY: demo test setup setup-test lint typecheck format bench clean

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

demo: setup
	$(BIN)/bbdirect demo

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Strict on direct/ and ccda_mapper/, non-strict on the sidecar and the CLI ([tool.mypy] in pyproject.toml).
typecheck:
	$(BIN)/mypy $(TYPECHECK_PATHS)

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup-test lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache demo-out
