"""Deadlines for what a client sends (slowloris): uvicorn closes idle keep-alive connections, but
not one that trickles a request head, never sends one, or stops half-way through a body.

The head deadline runs from the connection's start (or, between requests, from the first byte of the
next head) until the head is complete. A body only has to keep moving: blob uploads may stream for
hours, so the body deadline is for a silence, re-armed by every chunk; time in which the app has not
read what already came (reading paused), or has not yet asked for a body the client holds back until
told to go on (`Expect: 100-continue`), does not count against the client.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DeadlineProtocol(HttpToolsProtocol):
    head_timeout: float = 30.0
    body_idle_timeout: float = 60.0
    _deadline: asyncio.TimerHandle | None = None

    @classmethod
    def with_deadlines(cls, head_timeout: float, body_idle_timeout: float) -> type[DeadlineProtocol]:
        return type(cls.__name__, (cls,), {"head_timeout": head_timeout, "body_idle_timeout": body_idle_timeout})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout, body=False)  # a connection that never sends a head is a slow head too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._arm(self.head_timeout, body=False)

    def on_headers_complete(self) -> None:
        self._arm(self.body_idle_timeout, body=True)  # until on_message_complete, which may follow at once
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(self.body_idle_timeout, body=True)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """A graceful stop closes idle connections. Over TLS a close waits for the client's close_notify,
        which an idle keep-alive client never sends, so the stop would hang for the whole grace period:
        drop those at once (no request is lost, and clients retry a kept connection that went away)."""
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.get_extra_info("ssl_object") is not None:
            self._disarm()
            self.transport.abort()
            return
        super().shutdown()

    def _arm(self, seconds: float, *, body: bool) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, seconds, body)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, seconds: float, body: bool) -> None:
        self._deadline = None
        waiting_for_us = self.flow.read_paused or (body and self.cycle is not None
                                                   and self.cycle.waiting_for_100_continue)
        if waiting_for_us:  # not the client's delay
            self._arm(seconds, body=body)
            return
        if not self.transport.is_closing():
            self.logger.debug("closing a connection: nothing received from the client for %.0f s", seconds)
            self.transport.close()
