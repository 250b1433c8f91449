# holdcast: the two commands a newcomer needs are `make demo` and `make test`.
# Both create the project-local virtual environment .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATASET ?= $(or $(HOLDCAST_DATASET),demo)
export HOLDCAST_HOME ?= $(CURDIR)/.holdcast

.PHONY: demo test test-unit bench airflow mlflow-ui lint constraints clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,celery]"
	touch $@

## Run the whole main job through Airflow on the embedded default (DATASET=demo or dataco).
demo: $(VENV)/.installed
	$(BIN)/python -m include.demo --dataset $(DATASET)

## Run every test (unit, DAG parsing, end to end through Airflow).
test: $(VENV)/.installed
	$(BIN)/pytest

test-unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit tests/dags

## The performance benchmarks of README.md "Targets" (not part of the tests). ORDERS=..., LINES=...
bench: $(VENV)/.installed
	$(BIN)/python -m bench.run $(if $(ORDERS),--orders $(ORDERS)) $(if $(LINES),--lines $(LINES))

## Any airflow command in the demo's environment, e.g. make airflow ARGS="dags list-runs holdcast_score"
airflow: $(VENV)/.installed
	$(BIN)/python -m include.demo --dataset $(DATASET) --airflow $(ARGS)

## Open the MLflow UI on the local store the demo wrote.
mlflow-ui: $(VENV)/.installed
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(HOLDCAST_HOME)/mlflow.db --host 127.0.0.1 --port 5000

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## Rewrite constraints.txt from the current environment after a deliberate upgrade.
constraints: $(VENV)/.installed
	( sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | sort -f ) > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(HOLDCAST_HOME)
