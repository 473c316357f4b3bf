"""Constants the command line needs before anything heavy is imported (fast CLI start-up)."""

ENV_PREFIX = "CACHEWATCH_"
# Outside the 9100-9999 range the Prometheus wiki allocates to exporters (now full) and not the
# default of any well-known exporter or dev server.
DEFAULT_PORT = 10150
# Where the documentation lives (the repository's docs/ folder, readable as it is): the status
# page links a source's page, alerts link their runbooks (``bundle --runbook-url`` moves them).
DOCS_URL = "https://github.com/cachewatch/cachewatch/blob/main/docs/"
