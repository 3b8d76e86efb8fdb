# The two commands: `make lab` runs the product, `make test` runs every test.
# Both install what they need first (system packages, a project-local .venv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-deps
LAB_PORT ?= 8888

.PHONY: lab test lint typecheck unit bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	touch $(STAMP)

# What only the tests need (Chromium for the browser tests).
$(TEST_STAMP): $(STAMP) scripts/system-deps.sh
	bash scripts/system-deps.sh test
	touch $(TEST_STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --no-browser \
		$(if $(filter 0,$(shell id -u)),--allow-root,) \
		--CattyExtension.demo_model=True

lint: $(STAMP)
	$(BIN)/ruff check catty_jupyter tests benchmarks
	$(BIN)/ruff format --check catty_jupyter tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy catty_jupyter

unit: $(TEST_STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	@# Benchmarks print measurements and never fail the build; a benchmark that cannot run says so.
	@for b in benchmarks/bench_*.py; do echo "==> $$b"; \
		$(BIN)/python $$b || echo "!! $$b could not run (exit $$?)"; done

test: lint typecheck unit bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
