"""Read timeouts for `ml-expert serve`: a client that sends half a request is cut off.

uvicorn's h11 protocol only times out *idle* keep-alive connections; a client that sends part
of its headers, or declares a body and sends it slowly, holds a connection (and its memory)
forever. This protocol gives each request a deadline for its headers and one for its body.
"""

from __future__ import annotations

import asyncio
import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = float(os.environ.get("ML_EXPERT_HEADER_TIMEOUT_S", "10"))
BODY_TIMEOUT_S = float(os.environ.get("ML_EXPERT_BODY_TIMEOUT_S", "30"))
"""Seconds a client has to send its headers, then its body (environment variables override)."""


class TimedH11Protocol(H11Protocol):
    """H11Protocol with a header-read and a body-read deadline per request."""

    header_timeout = HEADER_TIMEOUT_S
    body_timeout = BODY_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _disarm(self) -> None:
        timer = getattr(self, "_read_timer", None)
        if timer is not None:
            timer.cancel()
            self._read_timer = None

    def handle_events(self) -> None:
        before = self.conn.their_state
        super().handle_events()
        after = self.conn.their_state
        if after is h11.SEND_BODY and before is not h11.SEND_BODY:
            self._arm(self.body_timeout)  # headers in: now the body has its own deadline
        elif after is not h11.IDLE and after is not h11.SEND_BODY:
            self._disarm()  # the whole request is in: the app's time is not a read timeout

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm(self.header_timeout)  # the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.close()
