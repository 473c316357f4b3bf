"""Constants the command line needs before anything heavy is imported (fast CLI start-up)."""

ENV_PREFIX = "CACHEWATCH_"
# Outside the 9100-9999 range the Prometheus wiki allocates to exporters (now full) and not the
# default of any well-known exporter or dev server.
DEFAULT_PORT = 10150
