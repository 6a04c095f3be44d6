"""Logging setup and the access log (text or JSON lines). Secrets never reach it: no headers are logged."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # the server supervisor imports this module and must stay lean: no pydantic
    from portside.config import LogSettings

access_log = logging.getLogger("portside.access")

# Control characters (C0, DEL, C1) and Unicode line and paragraph separators: what lets a client's
# path start a log line of its own or colour a terminal.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {0x2028: "\\u2028", 0x2029: "\\u2029"}
_ESCAPES = _CONTROLS | {ord("\\"): "\\\\"}  # and the backslash, so that an escape is never ambiguous


def escape(text: str) -> str:
    """A client-controlled value for the log: control characters as `\\xNN`, backslashes doubled."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """Plain text lines; no message can break its line (a traceback after it still may)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(_CONTROLS)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


def configure_logging(settings: LogSettings) -> None:
    configure(settings.format, settings.level)


def configure(style: str, level: str, loggers: tuple[str, ...] = ("portside",)) -> None:
    """Send `loggers` to stderr as text or JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    if style == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in loggers:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


class AccessLogMiddleware:
    """One line per request: method, path (no query string: it may carry tokens), status, bytes, time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        sent = 0
        length: bytes | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, length
            if message["type"] == "http.response.start":
                status = message["status"]
                length = dict(message.get("headers", ())).get(b"content-length")
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.pathsend" and length:
                sent += int(length)  # the server sends the file itself
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            ms = (time.perf_counter() - start) * 1000
            client = scope.get("client")
            method, path = escape(scope["method"]), escape(scope["path"])
            fields = {
                "method": method, "path": path, "status": status or 500, "bytes": sent,
                "duration_ms": round(ms, 2), "client": escape(str(client[0])) if client else None,
            }
            access_log.info("%s %s %s %.1fms", method, path, status or 500, ms, extra={"fields": fields})
