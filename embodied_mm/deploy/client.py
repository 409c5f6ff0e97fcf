"""The robot-side client of the policy server; it reconnects by itself.

:class:`PolicyClient` speaks the protocol of :mod:`embodied_mm.deploy.server` (which is openpi's),
synchronously, because the controller loop is synchronous. Every call has a timeout; a dropped
or timed-out connection is closed and re-opened on the next call (one attempt per call, so a
dead server costs the loop at most ``connect_timeout_s`` per step, and the safety watchdog
decides when to stop); one the server closed between calls (its idle timeout) is re-opened
before sending, so that costs no request. :class:`RemotePolicy` adapts it to the runtime's
``ChunkSource``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from embodied_mm.deploy.wire import WireError, packb, unpackb
from embodied_mm.features import OBS_STATE, TASK, image_key
from embodied_mm.runtime.inference import RTC_DELAY, RTC_PREFIX, ChunkResult, PolicyUnavailable

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """The server answered with an error message (bad request or failed inference)."""


class PolicyClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 1.0,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"policy server URL {url!r} must start with ws:// or wss://")
        self.url = url
        self.token = token
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_message_bytes = max_message_bytes
        self._ws: ClientConnection | None = None
        self.metadata: dict[str, Any] | None = None
        self.connects = 0

    def _connect(self) -> ClientConnection:
        headers = {"Authorization": f"Api-Key {self.token}"} if self.token else None
        try:
            ws = connect(
                self.url,
                additional_headers=headers,
                open_timeout=self.connect_timeout_s,
                compression=None,
                max_size=self.max_message_bytes,
                proxy=None,  # a loopback policy server must never go through an HTTP proxy
            )
        except InvalidStatus as e:
            if e.response.status_code == 401:
                raise PermissionError(f"{self.url} refused the token") from e
            raise PolicyUnavailable(f"cannot connect to {self.url}: {e}") from e
        # anything else the transport raises (a server killed mid-handshake: EOFError or any
        # websockets error) means the same: no server now, try again on the next call
        except (OSError, TimeoutError, EOFError, WebSocketException) as e:
            raise PolicyUnavailable(f"cannot connect to {self.url}: {type(e).__name__}: {e}") from e
        try:
            meta = unpackb(ws.recv(timeout=self.timeout_s), self.max_message_bytes)
        except (TimeoutError, EOFError, OSError, WebSocketException, WireError) as e:
            ws.close()
            raise PolicyUnavailable(f"no metadata from {self.url}: {e}") from e
        self.metadata = meta
        self.connects += 1
        if self.connects > 1:
            log.info("reconnected to %s", self.url)
        return ws

    def connect(self) -> dict[str, Any]:
        """Open the connection now (the first :meth:`infer` would otherwise) and return the
        server's metadata."""
        if self._ws is None:
            self._ws = self._connect()
        assert self.metadata is not None
        return self.metadata

    def connect_waiting(
        self, wait_s: float, on_wait: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """:meth:`connect`, retrying with backoff (0.25 s doubling to 2 s) for up to ``wait_s``
        seconds while the server is not up yet (a server started just before takes seconds to
        load its model and listen). ``on_wait`` hears once that it waits. A refused token is
        not retried; after ``wait_s`` the last :class:`PolicyUnavailable` is raised."""
        deadline = time.monotonic() + wait_s
        delay, announced = 0.25, False
        while True:
            try:
                return self.connect()
            except PolicyUnavailable as e:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PolicyUnavailable(f"{e} (waited {wait_s:g} s)") from e
                if on_wait is not None and not announced:
                    on_wait(f"waiting for the policy server at {self.url} (up to {wait_s:g} s)")
                    announced = True
                time.sleep(min(delay, left))
                delay = min(2 * delay, 2.0)

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Send one observation, return the reply map; :class:`PolicyUnavailable` on transport
        failure (the connection is re-opened on the next call), :class:`ServerError` when the
        server rejects the request."""
        if self._ws is not None and self._ws.protocol.state is not State.OPEN:
            self.close()  # the server closed it since the last call (e.g. idle timeout)
        if self._ws is None:
            self._ws = self._connect()
        try:
            self._ws.send(packb(obs))
            reply = self._ws.recv(timeout=self.timeout_s)
        except (TimeoutError, EOFError, OSError, WebSocketException) as e:
            self.close()  # a late reply would desynchronise request and response: start over
            raise PolicyUnavailable(f"policy server {self.url}: {type(e).__name__}: {e}") from e
        if isinstance(reply, str):
            raise ServerError(reply)
        return unpackb(reply, self.max_message_bytes)

    def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):  # the socket may already be gone
                self._ws.close()
            self._ws = None


class RemotePolicy:
    """A :class:`~embodied_mm.runtime.inference.ChunkSource` backed by a policy server."""

    def __init__(self, client: PolicyClient) -> None:
        self.client = client
        self._reset_pending = True
        self.cameras: tuple[str, ...] = ()

    def reset(self) -> None:
        self._reset_pending = True  # sent with the next request

    @property
    def rtc_max_delay(self) -> int:
        """The served policy's largest committed-prefix delay (``--mode rtc``); 0 when it
        cannot continue a prefix or the server predates real-time chunking."""
        return int(self.client.connect().get("rtc_max_delay", 0) or 0)

    def infer(self, frame: dict[str, Any]) -> ChunkResult:
        meta = self.client.connect()
        cameras = meta["cameras"]
        obs = {image_key(c): np.ascontiguousarray(frame[image_key(c)]) for c in cameras}
        obs[OBS_STATE] = np.asarray(frame[OBS_STATE], dtype=np.float32)
        obs[TASK] = str(frame.get(TASK, ""))
        if self._reset_pending:
            obs["reset"] = True
        if RTC_PREFIX in frame:  # real-time chunking: the committed actions travel along
            obs[RTC_PREFIX] = np.asarray(frame[RTC_PREFIX], dtype=np.float32)
            obs[RTC_DELAY] = int(frame[RTC_DELAY])
        t0 = time.perf_counter()
        reply = self.client.infer(obs)
        self._reset_pending = False
        rtt_ms = (time.perf_counter() - t0) * 1e3
        timing = dict(reply.get("server_timing", {}))
        timing["round_trip_ms"] = rtt_ms
        actions = np.asarray(reply["actions"], dtype=np.float32)
        if actions.ndim != 2:
            raise ServerError(f"server sent actions of shape {actions.shape}, expected (K, D)")
        return ChunkResult(
            actions=actions,
            plan=reply.get("plan"),
            infer_ms=float(timing.get("infer_ms", 0.0)),
            meta=timing,
        )
