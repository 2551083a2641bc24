# govlake developer targets.
#
#   make demo-data        generate small deliveries for every node into ./landing
#   make airflow          Airflow 3 standalone on http://localhost:8080 (SQLite, this checkout's dags/)
#   make airflow-check    DAG import errors and the DAG list, as the running Airflow sees them
#   make airflow-trigger DAG=govlake_ingest_gaj    trigger a DAG run (from another shell)
#   make test-dags        the Airflow tests (tests/dags)
#
# Executables come from .venv/bin when it exists (README's set-up), else from PATH; override with
# e.g. `make airflow VENV_BIN=/path/to/venv/bin/`.

VENV_BIN ?= $(if $(wildcard .venv/bin/airflow),$(CURDIR)/.venv/bin/,)
AIRFLOW  := $(VENV_BIN)airflow
GOVLAKE  := $(VENV_BIN)govlake
PYTHON   := $(if $(VENV_BIN),$(VENV_BIN)python,python3)

ifneq ($(VENV_BIN),)
export PATH := $(VENV_BIN:%/=%):$(PATH)  # `airflow standalone` starts its components as `airflow ...` from PATH
endif

AIRFLOW_PORT ?= 8080
DEMO_ROWS    ?= 20000
DEMO_SEED    ?= 20261124

export AIRFLOW_HOME    ?= $(CURDIR)/.airflow
export GOVLAKE_LAKE    ?= $(CURDIR)/lake
export GOVLAKE_LANDING ?= $(CURDIR)/landing
export GOVLAKE_REPORTS ?= $(GOVLAKE_LAKE)/_reports/quality

# Airflow settings for the local instance (environment variables win over $(AIRFLOW_HOME)/airflow.cfg).
export AIRFLOW__CORE__DAGS_FOLDER                := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES              := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN       := sqlite:///$(AIRFLOW_HOME)/airflow.db
export AIRFLOW__API__HOST                        := 127.0.0.1
export AIRFLOW__API__PORT                        := $(AIRFLOW_PORT)
export AIRFLOW__API__BASE_URL                    := http://localhost:$(AIRFLOW_PORT)
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL   := http://localhost:$(AIRFLOW_PORT)/execution/
# OpenLineage task events of the Airflow provider: a local JSON Lines file (Marquez in production, infra/airflow/).
export AIRFLOW__OPENLINEAGE__NAMESPACE           := govlake
export AIRFLOW__OPENLINEAGE__TRANSPORT           := {"type": "file", "log_file_path": "$(AIRFLOW_HOME)/openlineage/events.jsonl", "append": true}

DAG ?= govlake_ingest_gaj

.PHONY: airflow airflow-init airflow-check airflow-trigger demo-data test-dags

demo-data:
	$(GOVLAKE) generate --rows $(DEMO_ROWS) --seed $(DEMO_SEED) --out $(GOVLAKE_LANDING)

airflow-init:
	mkdir -p $(AIRFLOW_HOME)/openlineage
	$(AIRFLOW) db migrate
	$(AIRFLOW) pools set govlake_lake 1 "govlake: one writer to the lake at a time (infra/airflow/pools.json)"

airflow: airflow-init
	@echo "Airflow UI: http://localhost:$(AIRFLOW_PORT)  (admin password: $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"
	@echo "lake: $(GOVLAKE_LAKE)   landing: $(GOVLAKE_LANDING)   DAGs: $(AIRFLOW__CORE__DAGS_FOLDER)"
	exec $(AIRFLOW) standalone

airflow-check:
	$(AIRFLOW) dags list-import-errors
	$(AIRFLOW) dags list --columns dag_id,is_paused

airflow-trigger:
	$(AIRFLOW) dags trigger $(DAG)

test-dags:
	$(PYTHON) -m pytest tests/dags
