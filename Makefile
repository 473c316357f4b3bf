# The two commands of the quickstart are `make run` and `make test`; the rest are helpers.
.PHONY: run test lint docs golden bench stack clean

run:  ## run the exporter with working defaults (ARGS="--redis-target redis://host:6379")
	scripts/run.sh $(ARGS)

test:  ## install what the suite needs, then ruff and pytest
	scripts/test.sh $(ARGS)

lint:
	scripts/venv.sh test && .venv/bin/ruff check .

docs:  ## regenerate the README configuration table and metric reference
	scripts/venv.sh && .venv/bin/python scripts/update_readme.py

golden:  ## regenerate tests/golden/<source>.prom (the whole /metrics per source); review the diff
	scripts/venv.sh test && CACHEWATCH_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/core/test_golden.py

stack:  ## cachewatch + Redis + registry + Prometheus + Alertmanager + Grafana (Compose v2 or v1)
	scripts/compose.sh up --build

bench:  ## every benchmark, then the issue-26 table (needs wrk, redis-server, prometheus-redis-exporter)
	scripts/venv.sh test && .venv/bin/python benchmarks/run_all.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis build *.egg-info
