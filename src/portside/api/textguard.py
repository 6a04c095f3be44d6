"""Text no database can store, refused at the door: a NUL character or a lone UTF-16 surrogate in the
path, the query, or a JSON or form body of an /api/v2.0 (or portal /c) request answers 400 before any
handler runs (PostgreSQL refuses NUL in text, and neither backend can encode a lone surrogate as UTF-8)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portside.api.errors import harbor_error

CHECKED_BODY_BYTES = 8 << 20  # /api bodies are small; a larger one is left to the body size limits
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_json(value: Any) -> bool:
    """Every key and string in a decoded JSON document is storable (walked without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not storable(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _body_kind(scope: Scope) -> str | None:
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    media = content_type.split(b";", 1)[0].strip().lower()
    if not media or media == b"application/json" or media.endswith(b"+json"):
        return "json"
    return "form" if media == b"application/x-www-form-urlencoded" else None


class TextGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if not storable(scope["path"]) or not all(storable(k) and storable(v) for k, v in query):
            await _refuse(scope, receive, send, "the path or the query")
            return
        kind = _body_kind(scope)
        if scope["method"] not in BODY_METHODS or kind is None:
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        body = b""
        while len(body) <= CHECKED_BODY_BYTES:
            message = await receive()
            received.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if body and len(body) <= CHECKED_BODY_BYTES and not _storable_body(body, kind):
            await _refuse(scope, receive, send, "the body")
            return

        async def replay() -> Message:
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)


def _storable_body(body: bytes, kind: str) -> bool:
    if kind == "form":
        return all(storable(k) and storable(v) for k, v in parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return True  # not JSON: the handler's own parsing answers that
    return storable_json(document)


async def _refuse(scope: Scope, receive: Receive, send: Send, where: str) -> None:
    message = f"{where} holds a NUL character or a lone surrogate (\\u0000, \\ud800-\\udfff): not accepted"
    await harbor_error("BAD_REQUEST", 400, message)(scope, receive, send)
