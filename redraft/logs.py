"""The logs of `redraft` commands: one format, and share tokens never written out.

A share token in a URL is a working link for whoever reads the logs, and uvicorn's access log (and its
websocket lines) record the whole query: `serve` writes `?token=...` as `?token=REDACTED`.
"""

from __future__ import annotations

import copy
import logging
import re

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")


def start_logging(level: str, *filters: logging.Filter) -> None:
    """The root logger at `level` ("info", ...) in the commands' format, each filter on its handlers."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    for handler in logging.getLogger().handlers:
        for log_filter in filters:
            handler.addFilter(log_filter)


class RedactTokens(logging.Filter):
    """Writes `?token=...` as `?token=REDACTED` in every log line: uvicorn's access log (and its websocket
    lines) record the whole query, and a share token there is a working link for whoever reads the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) for arg in record.args)
        record.msg = redact(record.msg)
        return True


def redact(value):
    return TOKEN_IN_QUERY.sub(r"\1REDACTED", value) if isinstance(value, str) else value


def uvicorn_log_config() -> dict:
    """uvicorn's logging configuration with the token filter on each of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_tokens": {"()": RedactTokens}}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_tokens")
    return config
