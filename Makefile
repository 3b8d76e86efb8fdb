# The two commands: `make lab` runs the product, `make test` runs every test.
# Both install what they need first (system packages, a project-local .venv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-deps
LAB_PORT ?= 8888
LABEXT := labextension
LABEXT_BUILT := catty_jupyter/labextension/static/style.js
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/catty-jupyter
NODE_STAMP := $(LABEXT)/node_modules/.installed
LABEXT_SOURCES := $(wildcard $(LABEXT)/src/*.ts $(LABEXT)/src/widgets/*.ts $(LABEXT)/style/* $(LABEXT)/schema/*.json) $(LABEXT)/package.json $(LABEXT)/tsconfig.json

.PHONY: lab test lint typecheck unit jest bench install labextension clean

install: $(STAMP) labextension

# The editable install does not run the wheel's npm build hook: the rules below build the
# JupyterLab extension and link it where JupyterLab looks.
$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	SKIP_JUPYTER_BUILDER=1 $(BIN)/python -m pip install --quiet -e '.[lab,test]'
	touch $(STAMP)

$(NODE_STAMP): $(LABEXT)/package.json $(LABEXT)/package-lock.json scripts/system-deps.sh
	bash scripts/system-deps.sh
	cd $(LABEXT) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

$(LABEXT_BUILT): $(NODE_STAMP) $(LABEXT_SOURCES)
	cd $(LABEXT) && npm run --silent build:prod
	touch $(LABEXT_BUILT)

labextension: $(STAMP) $(LABEXT_BUILT)
	@mkdir -p $(dir $(LABEXT_LINK))
	@if [ ! -L $(LABEXT_LINK) ]; then rm -rf $(LABEXT_LINK); ln -s $(CURDIR)/catty_jupyter/labextension $(LABEXT_LINK); fi

# What only the tests need (Chromium for the browser tests).
$(TEST_STAMP): $(STAMP) scripts/system-deps.sh
	bash scripts/system-deps.sh test
	touch $(TEST_STAMP)

lab: install
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --no-browser \
		$(if $(filter 0,$(shell id -u)),--allow-root,) \
		--CattyExtension.demo_model=True

lint: $(STAMP)
	$(BIN)/ruff check catty_jupyter tests benchmarks
	$(BIN)/ruff format --check catty_jupyter tests benchmarks

typecheck: $(STAMP) $(NODE_STAMP)
	$(BIN)/mypy catty_jupyter
	cd $(LABEXT) && npx --no-install tsc --noEmit -p . && npx --no-install tsc --noEmit -p tsconfig.test.json

# The extension's own unit tests (model and stream helper), in node.
jest: $(NODE_STAMP)
	cd $(LABEXT) && npm test --silent

unit: $(TEST_STAMP) labextension
	$(BIN)/python -m pytest

bench: $(STAMP)
	@# Benchmarks print measurements and never fail the build; a benchmark that cannot run says so.
	@for b in benchmarks/bench_*.py; do echo "==> $$b"; \
		$(BIN)/python $$b || echo "!! $$b could not run (exit $$?)"; done

test: lint typecheck jest unit bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(LABEXT)/node_modules $(LABEXT)/lib $(LABEXT)/tsconfig.tsbuildinfo catty_jupyter/labextension
