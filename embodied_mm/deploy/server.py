"""The policy server: websocket + msgpack-numpy, openpi's websocket policy protocol.

Protocol (compatible with ``openpi_client.websocket_client_policy``):

1. on connect the server sends one binary message: the metadata map (observation schema with
   the accepted ``state_range``, ``action_dim``, ``chunk_size``, ``max_message_bytes``, the
   ``idle_timeout_s``);
2. then, per request, the client sends an observation map (``observation.images.<cam>``
   (H, W, 3) uint8, ``observation.state`` (S,) float, ``task`` str, optional ``reset`` bool)
   and receives ``{"actions": (K, D) float32, "plan": str | None, "server_timing": {...}}``;
3. a bad request gets a *text* message ``"error: ..."`` naming the problem (openpi's client
   raises it as an error) and the connection and server keep running; a message over
   ``max_message_bytes`` is refused by the websocket layer (close code 1009) before it is read.

One client cannot stall or lock out the others:

- a connection that sends no request for ``idle_timeout_s`` is closed (code 1001, the reason
  says so), and one that does not finish its websocket handshake within
  ``handshake_timeout_s`` is dropped; at most ``max_clients`` connections are open, at most
  ``max_clients_per_address`` of them from one IP address, so a flood from one host leaves
  room for everyone else;
- a request is decoded within :meth:`ObsSchema.decode_limits` (a message that could not be a
  request stops decoding at the first container over the limits), and one larger than
  ``INLINE_DECODE_BYTES`` is decoded on a worker thread instead of the event loop;
- the model runs on :class:`~embodied_mm.deploy.worker.ModelWorker`'s thread, which batches
  concurrent clients; if it stops, ``/healthz`` answers 503 with the reason and every request
  gets that reason as its error reply.

``GET /healthz`` answers 200 ``ok`` while the model worker runs. When a token is set, the
websocket handshake must carry ``Authorization: Api-Key <token>`` (openpi's header) or
``Bearer <token>``; binding to a non-loopback address without a token is refused.

Logging: one line per event (refused, idle-closed, client gone mid-request, inference error);
connects, disconnects and websockets' own per-connection lines are at DEBUG, as are tracebacks.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import http
import ipaddress
import logging
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from embodied_mm.deploy.schema import ObsSchema, SchemaError
from embodied_mm.deploy.state_range import policy_state_stats, state_range_from_stats
from embodied_mm.deploy.wire import WireError, packb, unpackb
from embodied_mm.deploy.worker import ModelWorker, WorkerFailed
from embodied_mm.runtime.inference import ChunkResult

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Requests up to this size decode in microseconds within the schema's limits; a thread
# hand-off would cost more than it saves. Larger ones (high-resolution frames, or someone
# sending megabytes) decode off the event loop.
INLINE_DECODE_BYTES = 1024 * 1024
IDLE_CLOSE_CODE = 1001  # "going away": PolicyClient reconnects on its next request


class BatchPolicy(Protocol):
    """What the server serves; :class:`embodied_mm.runtime.inference.LocalPolicy` is one."""

    def infer_batch(self, frames: list[dict[str, Any]]) -> list[ChunkResult]: ...

    def reset(self) -> None: ...

    def metadata(self) -> dict[str, Any]: ...


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname other than localhost may resolve anywhere


def check_bindable(host: str, port: int) -> None:
    """Raise ValueError naming the problem when ``host:port`` cannot be served: a port outside
    0..65535, or an address that is in use or not on this machine. Called before the model
    loads, so a bad port costs no start-up time."""
    if not 0 <= port <= 65535:
        raise ValueError(f"--port {port} is outside 0..65535 (0 picks a free port)")
    try:
        # SO_REUSEADDR, as asyncio's server sets it: a port in TIME_WAIT is free, one that
        # another process listens on is not
        socket.create_server((host, port)).close()
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ValueError(f"port {port} on {host} is already in use") from e
        raise ValueError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


class _QuietLogger(logging.LoggerAdapter):
    """websockets logs every connection open/close and every HTTP reply at INFO; at a few
    robots' reconnects and a health checker that floods an operator's log, so those lines go
    to DEBUG. Warnings and errors pass unchanged."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return f"{addr[0]}:{addr[1]}" if addr else "?"


class PolicyServer:
    def __init__(
        self,
        policy: BatchPolicy,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_batch: int = 16,
        max_clients: int = 64,
        image_shape: tuple[int, int] | None = None,
        max_clients_per_address: int = 16,
        idle_timeout_s: float = 30.0,
        handshake_timeout_s: float = 5.0,
        state_stats: dict[str, Any] | None = None,
    ) -> None:
        """``state_stats``: normalisation stats that set the accepted state range (default:
        the policy's own, see :mod:`embodied_mm.deploy.state_range`)."""
        if not token and not is_loopback(host):
            raise ValueError(
                f"refusing to serve on non-loopback address {host!r} without --token: anyone on "
                "the network could drive the robot"
            )
        for name, value in (
            ("max_clients", max_clients),
            ("max_clients_per_address", max_clients_per_address),
            ("max_batch", max_batch),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name, value in (
            ("idle_timeout_s", idle_timeout_s),
            ("handshake_timeout_s", handshake_timeout_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        self.policy = policy
        self.host = host
        self.port = port
        self.token = token
        self.max_message_bytes = max_message_bytes
        self.max_batch = max_batch
        self.max_clients = max_clients
        self.max_clients_per_address = max_clients_per_address
        self.idle_timeout_s = idle_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        meta = policy.metadata()
        state_dim = int(meta["state_dim"])
        stats = state_stats if state_stats is not None else policy_state_stats(policy)
        state_range = state_range_from_stats(stats, state_dim)
        self.schema = ObsSchema(
            cameras=tuple(meta["cameras"]),
            state_dim=state_dim,
            image_shape=image_shape,
            state_low=tuple(state_range[0].tolist()) if state_range else None,
            state_high=tuple(state_range[1].tolist()) if state_range else None,
            action_dim=int(meta["action_dim"]),
            chunk_size=int(meta["chunk_size"]),
            rtc_max_delay=int(meta.get("rtc_max_delay", 0) or 0),
        )
        self._limits = self.schema.decode_limits(max_message_bytes)
        self.metadata = {
            **meta,
            **self.schema.to_metadata(),
            "max_message_bytes": max_message_bytes,
            "idle_timeout_s": idle_timeout_s,
        }
        self._metadata_bytes = packb(self.metadata)
        # connection -> peer IP, reserved when the handshake is accepted (so concurrent
        # handshakes cannot overshoot the limits) and released when the connection ends
        self._slots: dict[ServerConnection, str] = {}
        self._worker: ModelWorker | None = None
        self._decoder: ThreadPoolExecutor | None = None
        self._closing: set[asyncio.Future] = set()  # idle connections being closed
        self.requests_served = 0
        self.errors_sent = 0
        self.refused = 0
        self.idle_closed = 0

    # --- state --------------------------------------------------------------------------------
    @property
    def clients(self) -> int:
        """Open (or opening) websocket connections."""
        return len(self._slots)

    @property
    def failure(self) -> str | None:
        """Why the server cannot serve (its model worker stopped), or None while healthy."""
        if self._worker is None:
            return "not started"
        if self._worker.failure is None and not self._worker.alive:
            return "policy worker thread is gone"
        return self._worker.failure

    @property
    def batches_run(self) -> int:
        return self._worker.batches_run if self._worker else 0

    # --- HTTP side: health check, authentication and admission, before the upgrade ----------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            failure = self.failure
            if failure is not None:
                return connection.respond(
                    http.HTTPStatus.SERVICE_UNAVAILABLE, f"unhealthy: {failure}\n"
                )
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if self.token:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme not in ("Api-Key", "Bearer") or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                log.info("refused %s: missing or wrong token", _peer(connection))
                self.refused += 1
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
        refusal = self._admit(connection)
        if refusal is not None:
            log.info("refused %s: %s", _peer(connection), refusal)
            self.refused += 1
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, refusal + "\n")
        return None

    def _admit(self, connection: ServerConnection) -> str | None:
        """Reserve a slot for this connection, or say why there is none. Runs on the event
        loop without awaiting, so the check and the reservation cannot interleave."""
        # a connection whose handshake failed after it was admitted never reaches the handler
        for conn in [c for c in self._slots if c.state is State.CLOSED]:
            del self._slots[conn]
        address = connection.remote_address[0] if connection.remote_address else "?"
        if len(self._slots) >= self.max_clients:
            return f"too many clients (limit {self.max_clients})"
        from_address = Counter(self._slots.values())[address]
        if from_address >= self.max_clients_per_address:
            return (
                f"too many clients from {address} "
                f"(limit {self.max_clients_per_address} per address)"
            )
        self._slots[connection] = address
        return None

    # --- websocket side -----------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        self._slots.setdefault(ws, ws.remote_address[0] if ws.remote_address else "?")
        log.debug("client %s connected (%d open)", _peer(ws), len(self._slots))
        try:
            await self._serve_client(ws)
        except ConnectionClosed:
            pass  # the client went away between requests: nothing to report
        finally:
            self._slots.pop(ws, None)
            log.debug("client %s disconnected (%d open)", _peer(ws), len(self._slots))

    def _arm_idle_timer(self, ws: ServerConnection) -> asyncio.TimerHandle:
        def close_idle() -> None:
            self.idle_closed += 1
            log.info("closing %s: no request for %.0f s", _peer(ws), self.idle_timeout_s)
            task = asyncio.ensure_future(
                ws.close(IDLE_CLOSE_CODE, f"idle: no request for {self.idle_timeout_s:g} s")
            )
            self._closing.add(task)  # keep a reference until it is done (asyncio holds none)
            task.add_done_callback(self._closing.discard)

        return asyncio.get_running_loop().call_later(self.idle_timeout_s, close_idle)

    def _decode(self, message: bytes) -> dict[str, Any]:
        return self.schema.validate(unpackb(message, self.max_message_bytes, self._limits))

    async def _serve_client(self, ws: ServerConnection) -> None:
        assert self._worker is not None and self._decoder is not None
        loop = asyncio.get_running_loop()
        idle = self._arm_idle_timer(ws)
        try:
            await ws.send(self._metadata_bytes)
            prev_total_ms: float | None = None
            async for message in ws:
                idle.cancel()
                t0 = time.perf_counter()
                reply = await self._answer(message, prev_total_ms, loop, t0)
                try:
                    await ws.send(reply)
                except ConnectionClosed:
                    log.info("client %s left before its reply was sent", _peer(ws))
                    log.debug("send failed", exc_info=True)
                    return
                prev_total_ms = (time.perf_counter() - t0) * 1e3
                idle = self._arm_idle_timer(ws)
        finally:
            idle.cancel()

    async def _answer(
        self,
        message: bytes | str,
        prev_total_ms: float | None,
        loop: asyncio.AbstractEventLoop,
        t0: float,
    ) -> bytes | str:
        """The reply (packed map or ``"error: ..."`` text) to one request message."""
        assert self._worker is not None
        try:
            if isinstance(message, str):
                raise SchemaError("expected a binary msgpack message, got text")
            if len(message) > INLINE_DECODE_BYTES:
                frame = await loop.run_in_executor(self._decoder, self._decode, message)
            else:
                frame = self._decode(message)
        except (WireError, SchemaError) as e:
            self.errors_sent += 1
            return f"error: {e}"
        timing: dict[str, Any] = {"decode_ms": (time.perf_counter() - t0) * 1e3}
        if prev_total_ms is not None:
            timing["prev_total_ms"] = prev_total_ms
        try:
            reply = await self._worker.submit(frame, timing)
        except WorkerFailed as e:
            reply = f"error: {e}"
        if isinstance(reply, str):
            self.errors_sent += 1
        else:
            self.requests_served += 1
        return reply

    async def serve(self, ready: threading.Event | None = None) -> None:
        """Serve until cancelled; sets ``self.port`` to the bound port (useful with port 0)."""
        self._worker = ModelWorker(self.policy, self.schema.cameras, self.max_batch)
        self._worker.start(asyncio.get_running_loop())
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-decode")
        try:
            async with serve(
                self._handler,
                self.host,
                self.port,
                process_request=self._process_request,
                max_size=self.max_message_bytes,
                compression=None,  # images do not compress; deflate only adds latency
                open_timeout=self.handshake_timeout_s,
                logger=_QuietLogger(logging.getLogger("websockets.server"), {}),
            ) as server:
                self.port = next(iter(server.sockets)).getsockname()[1]
                log.info("policy server on ws://%s:%d", self.host, self.port)
                if ready is not None:
                    ready.set()
                await server.serve_forever()
        finally:
            self._worker.stop()
            self._decoder.shutdown(wait=True, cancel_futures=True)

    def run(self) -> None:
        """Serve in this process until interrupted (``embodied-mm serve``)."""
        asyncio.run(self.serve())


class ServerThread:
    """Runs a :class:`PolicyServer` on a background event loop (benchmarks, in-process tests)."""

    def __init__(self, server: PolicyServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="policy-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self.server.serve(self._ready))
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("policy server did not start within 30 s")
        return self

    @property
    def url(self) -> str:
        return f"ws://{self.server.host}:{self.server.port}"

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=10)
