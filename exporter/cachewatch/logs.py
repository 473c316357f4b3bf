"""Logging set-up: logfmt for people and grep, JSON for log pipelines.

Messages carry their context as ``extra={...}`` fields so both formats show the same facts; a
field whose value is ``None`` is left out (``cache_buster=None`` says nothing a missing field
does not). Fields often hold names from outside (repositories, instances, event ids): every field
is made safe (``labels.safe_text``) so a log line is always one line of valid UTF-8 with no raw
control characters, whatever a client sent, and cut to ``MAX_FIELD`` characters (a traceback to
``MAX_TRACEBACK``), so a 7 MiB field in a request cannot become a 7 MiB log line. At ``info``
the log says what changed, never what merely happened: start-up, targets going down and coming
back, refusals; a scrape logs nothing (libraries that log every request, like httpx and
uvicorn's own start-up chatter, are held to warnings unless ``debug``).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable

from .metrics.labels import safe_text

MAX_FIELD = 1024
MAX_TRACEBACK = 16384
# Record attributes that are not context fields (uvicorn adds an ANSI-coloured copy of its msg).
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields.update({k: v for k, v in vars(record).items()
                   if k not in _STANDARD and v is not None})
    if record.exc_info:
        fields["error"] = logging.Formatter().formatException(record.exc_info)
    # Newlines and tabs stay for the formats to escape (logfmt quotes, JSON escapes them);
    # other values are written through repr (logfmt) or ASCII-only JSON, both escaped.
    return {k: _bounded(v, MAX_TRACEBACK if k == "error" and record.exc_info else MAX_FIELD)
            if isinstance(v, str) else _small(v) for k, v in fields.items()}


def _small(value: object) -> object:
    """A number as it is; a list or any other object as itself while its text is short."""
    if isinstance(value, (int, float)) or len(text := str(value)) <= MAX_FIELD:
        return value
    return _bounded(text, MAX_FIELD)


def _bounded(text: str, limit: int) -> str:
    """Made safe and cut to ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return safe_text(text, keep="\n\t")
    return safe_text(text[:limit], keep="\n\t") + f"...[{len(text) - limit} more characters]"


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=info msg="..." key=value`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def _logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else safe_text(str(value), keep="\n\t")
    if text and not any(c in text for c in ' ="\n\t'):
        return text
    return json.dumps(text)


def setup(level: str = "info", fmt: str = "logfmt", chatty: Iterable[str] = ()) -> None:
    """Route every logger (uvicorn's included) to stderr in the chosen format; ``chatty`` are
    the sources' client loggers that log every request (``SourcePackage.chatty_loggers``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Access logs would echo /probe query strings; cachewatch logs what matters itself.
    logging.getLogger("uvicorn.access").disabled = True
    # HTTP clients log every request at info (a collector may make one per scrape); uvicorn
    # announces each start-up step. cachewatch says once that it listens and stops.
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in ("uvicorn.error", *chatty):
        logging.getLogger(name).setLevel(quiet)


class OncePerInterval:
    """A log line per cause at most once per ``interval``, saying how many were held back: a
    fault that repeats on every request (a full disk, a store that flaps) is one line a
    minute, not one per request."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}  # cause -> (logged at, held back since)

    def log(self, level: int, cause: str, message: str, **fields: object) -> bool:
        """Log ``message`` unless ``cause`` was logged within the interval; whether it was."""
        now = self._clock()
        with self._lock:
            last = self._last.get(cause)
            if last is not None and now - last[0] < self.interval:
                self._last[cause] = (last[0], last[1] + 1)
                return False
            self._last[cause] = (now, 0)
        self.logger.log(level, message, extra={**fields, "suppressed": last[1] if last else 0})
        return True
