# Interest-decay platform. Every recipe reads its settings from infra/env.sh (overridable by environment).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := . infra/env.sh &&
PYTHON ?= python3.11
DEMO_EVENTS ?= 200000
DEMO_SEED ?= 0
EVENTS ?=
DATASET ?= project
METHODS ?=
PROTOCOL ?=
EVALUATE_ARGS ?=
PYTEST_ARGS ?=
REPLICAS ?=

BENCH_EVENTS ?= 10000000
BENCHES ?= data_layer feature_store serving models decay_fit

.PHONY: help lint venv postgres redis online-store airflow-init data demo test bench airflow serve stop ingest push evaluate rollback lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

venv: .venv/.installed ## Create the virtualenv from the pinned lock file

.venv/.installed: infra/requirements.lock infra/constraints.txt pyproject.toml
	@test -x .venv/bin/python || $(PYTHON) -m venv .venv
	@echo "installing pinned requirements into .venv (first time: a few minutes)"
	.venv/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r infra/requirements.lock -c infra/constraints.txt 2>&1 | grep -v "^WARNING: Location" || true
	.venv/bin/pip check > /dev/null || { .venv/bin/pip check; echo "the lock is inconsistent: run make lock"; exit 1; }
	.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
	.venv/bin/python -c "import airflow, cosmos, dbt, feast, bentoml, evidently, torch" 2>/dev/null || { echo "venv is incomplete"; exit 1; }
	@touch $@

postgres: ## Start the private PostgreSQL (initialises it on first use)
	@$(ENV) infra/postgres.sh start

redis: ## Start the private Redis (the Feast online store when FEAST_ONLINE_STORE=redis)
	@$(ENV) infra/redis.sh start

online-store: ## Start what the configured online store needs (Redis when FEAST_ONLINE_STORE=redis)
	@$(ENV) if [ "$$FEAST_ONLINE_STORE" = redis ]; then infra/redis.sh start; fi

airflow-init: venv postgres ## Migrate the Airflow metadata database
	@$(ENV) infra/services.sh airflow-init

data: venv ## Generate the demo's synthetic events into $EVENTS_DIR (known half-lives)
	@$(ENV) test -s "$$EVENTS_DIR/synthetic-$(DEMO_EVENTS)-$(DEMO_SEED)-$$(date -u +%F).parquet" || \
	  python -m interest_decay.events.synthetic --events $(DEMO_EVENTS) --seed $(DEMO_SEED) \
	    --out "$$EVENTS_DIR/synthetic-$(DEMO_EVENTS)-$(DEMO_SEED)-$$(date -u +%F).parquet"

demo: venv postgres online-store airflow-init data ## Run the whole chain end to end, then serve the model
	@$(ENV) as_of=$$(date -u +%F) && \
	  echo "running DAG interest_pipeline for as_of=$$as_of (log: $$DECAY_STATE_DIR/logs/demo-dag.log)" && \
	  mkdir -p "$$DECAY_STATE_DIR/logs" && \
	  { airflow dags test interest_pipeline -c "{\"as_of\": \"$$as_of\", \"events_path\": \"$$EVENTS_DIR\"}" \
	      > "$$DECAY_STATE_DIR/logs/demo-dag.log" 2>&1 || { tail -40 "$$DECAY_STATE_DIR/logs/demo-dag.log"; exit 1; }; } && \
	  grep -q "state=success" "$$DECAY_STATE_DIR/logs/demo-dag.log" && \
	  infra/services.sh serve && \
	  echo && echo "Try it:" && \
	  echo "  curl -s -X POST http://127.0.0.1:$$SERVE_PORT/recommend -H 'Content-Type: application/json' -d '{\"user_id\": \"u7\", \"k\": 5}'" && \
	  echo "Reports for $$as_of: $$REPORTS_DIR/$$as_of/ (decay.md + decay_curves/, evaluation.md, metrics.json, quality.html, training_curve.png, drift.html, churn.png)" && \
	  echo "Stop everything with: make stop"

test: venv postgres airflow-init ## Set up what the tests need (PostgreSQL, Redis, Airflow DB, Chromium and nginx from Debian), then run the whole test suite
	@$(ENV) infra/redis.sh start || echo "Redis unavailable: the Redis variants of the feature-store tests will be skipped"
	@infra/debian-packages.sh || echo "without them the browser and replica tests (tests/e2e/test_ui_trigger_forms.py, test_replicas.py) fail"
	@$(ENV) python -m pytest $(PYTEST_ARGS)

bench: venv postgres airflow-init ## Run the benchmarks in tests/benchmarks (writes bench-results/*.json); BENCHES=... picks some
	@$(ENV) for name in $(BENCHES); do \
	  case $$name in \
	    data_layer) python -m tests.benchmarks.bench_data_layer --events $(BENCH_EVENTS) ;; \
	    feature_store|serving|models|decay_fit) python -m tests.benchmarks.bench_$$name ;; \
	    *) echo "unknown benchmark $$name (data_layer, feature_store, serving, models, decay_fit)"; exit 2 ;; \
	  esac || exit 1; \
	done

airflow: venv postgres online-store airflow-init ## Start the Airflow UI and scheduler in the background
	@$(ENV) infra/services.sh airflow

serve: venv postgres online-store ## Serve the latest built bento on $SERVE_PORT (REPLICAS=N: N replicas behind nginx)
	@$(ENV) $(if $(REPLICAS),SERVE_REPLICAS=$(REPLICAS)) infra/services.sh serve

stop: ## Stop everything the project started (serving, Airflow, Redis, PostgreSQL)
	@$(ENV) infra/services.sh stop

ingest: venv postgres ## Load an events file or folder: make ingest EVENTS=path
	@test -n "$(EVENTS)" || { echo "usage: make ingest EVENTS=path/to/events.(csv|parquet)"; exit 2; }
	@$(ENV) python -m interest_decay.events.ingest $(EVENTS)

push: venv postgres online-store ## Push an events file as live events to the online store: make push EVENTS=path
	@test -n "$(EVENTS)" || { echo "usage: make push EVENTS=path/to/events.(csv|parquet)"; exit 2; }
	@$(ENV) python -m interest_decay.online.realtime $(EVENTS)

evaluate: venv ## Compare decay models with the baselines on an events file: make evaluate EVENTS=path [DATASET=online-retail|taobao] [PROTOCOL=time|next-basket|loo]
	@test -n "$(EVENTS)" || { echo "usage: make evaluate EVENTS=path [DATASET=project|online-retail|taobao|movielens] [METHODS=a,b] [PROTOCOL=time|next-basket|loo]"; exit 2; }
	@$(ENV) python -m models.harness.evaluate --events $(EVENTS) --dataset $(DATASET) $(if $(METHODS),--methods $(METHODS)) $(if $(PROTOCOL),--protocol $(PROTOCOL)) $(EVALUATE_ARGS)

rollback: venv ## Make the previous champion model champion again, rebuild the bento, restart serving if it runs
	@$(ENV) tag=$$(python -m models.pipeline.registry rollback) && echo "champion is now $$tag" && mkdir -p "$$DECAY_STATE_DIR/logs" && \
	  MODEL_TAG=$$tag bentoml build -f serving/bentofile.yaml . > "$$DECAY_STATE_DIR/logs/rollback-build.log" 2>&1 && \
	  replicas=$$(ls "$$DECAY_STATE_DIR"/run/serve-*.pid 2>/dev/null | wc -l) && \
	  if compgen -G "$$DECAY_STATE_DIR/run/serve*.pid" > /dev/null; then SERVE_REPLICAS=$$((replicas > 0 ? replicas : 1)) infra/services.sh serve; else echo "serve it with: make serve"; fi

lock: ## Resolve infra/requirements.in into infra/requirements.lock with sha256 hashes, keeping today's pins (UPGRADE=1: newest; needs PyPI)
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install -q uv==0.13.8
	@# uv keeps the pins it finds in the output file: seeded with today's lock, only new or changed
	@# requirements move. UPGRADE=1 re-resolves everything to the newest allowed versions.
	tail -n +4 infra/requirements.lock > infra/requirements.lock.pins
	.venv-lock/bin/uv pip compile infra/requirements.in --generate-hashes -c infra/constraints.txt --python-version 3.11 \
	    $${PIP_FIND_LINKS:+--find-links $$PIP_FIND_LINKS} $(if $(UPGRADE),--upgrade) --no-header --no-annotate --quiet \
	    -o infra/requirements.lock.pins
	{ echo "# The platform's exact packages, each with its files' sha256: make venv installs them with"; \
	  echo "# pip install --no-deps --require-hashes. Generated by make lock from infra/requirements.in (uv pip compile"; \
	  echo "# --generate-hashes); do not edit by hand."; cat infra/requirements.lock.pins; } > infra/requirements.lock.new
	mv infra/requirements.lock.new infra/requirements.lock && rm -rf .venv-lock infra/requirements.lock.pins

lint: venv postgres ## Check the code: ruff (lint, format) on Python; sqlfluff on the dbt models (its dbt templater compiles against PostgreSQL)
	@$(ENV) infra/lint.sh

clean: stop ## Stop everything and delete the local state (.state) and the cluster's data dir
	@$(ENV) rm -rf "$$DECAY_STATE_DIR" "$$(dirname "$$PGDATA")"
