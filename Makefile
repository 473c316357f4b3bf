# The two commands of the quickstart are `make run` and `make test`; the rest are helpers.
.PHONY: run test demo lint docs golden bench stack clean

run:  ## run the exporter with working defaults (ARGS="--redis-target redis://host:6379")
	scripts/run.sh $(ARGS)

test:  ## install what the suite needs, then ruff and pytest
	scripts/test.sh $(ARGS)

demo:  ## feed every source of a running `make run` for 3 minutes (ARGS="--duration 10m")
	scripts/venv.sh examples && .venv/bin/python examples/feed_all.py $(ARGS)

lint:
	scripts/venv.sh test && .venv/bin/ruff check .

docs:  ## regenerate the configuration and metric references in docs/, then build the site into site/
	scripts/venv.sh docs && .venv/bin/python scripts/update_docs.py && NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict

golden:  ## regenerate tests/golden/<source>.prom (the whole /metrics per source); review the diff
	scripts/venv.sh test && CACHEWATCH_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/core/test_golden.py

stack:  ## cachewatch + Redis + registry + Prometheus + Alertmanager + Grafana (Compose v2 or v1)
	scripts/compose.sh up --build

bench:  ## every benchmark, then the overhead table (needs wrk, redis-server, prometheus-redis-exporter)
	scripts/venv.sh test && .venv/bin/python benchmarks/run_all.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis build site *.egg-info
