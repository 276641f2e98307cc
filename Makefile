# The two set-up commands of the README: `make demo` and `make test`. Each builds what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench prereqs clean airflow-venv

prereqs:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || \
	  { echo "error: Python >= 3.11 is required (found: $$($(PYTHON) --version 2>&1)). Set PYTHON=/path/to/python3.11"; exit 3; }
	@command -v java >/dev/null || { echo "error: Java 17 is required for Spark and 'java' is not on PATH (Debian: apt-get install openjdk-17-jre-headless)"; exit 3; }
	@java -version 2>&1 | grep -Eq 'version "(17|21)' || \
	  { echo "error: Java 17 is required for Spark; found: $$(java -version 2>&1 | head -1)"; exit 3; }

$(STAMP): pyproject.toml constraints.txt | prereqs
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	@touch $@

# Apache Airflow in its own venv, from the committed full freeze (its pins never mix with ours).
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

$(AIRFLOW_STAMP): deploy/airflow/requirements-airflow.txt | prereqs
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install --quiet -r deploy/airflow/requirements-airflow.txt
	@touch $@

airflow-venv: $(AIRFLOW_STAMP)

demo: $(STAMP)
	$(BIN)/recon demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) data reports .pytest_cache
