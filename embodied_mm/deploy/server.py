"""The policy server: websocket + msgpack-numpy, openpi's websocket policy protocol.

Protocol (compatible with ``openpi_client.websocket_client_policy``):

1. on connect the server sends one binary message: the metadata map (observation schema,
   ``action_dim``, ``chunk_size``, ``max_message_bytes``);
2. then, per request, the client sends an observation map (``observation.images.<cam>``
   (H, W, 3) uint8, ``observation.state`` (S,) float, ``task`` str, optional ``reset`` bool)
   and receives ``{"actions": (K, D) float32, "plan": str | None, "server_timing": {...}}``;
3. a bad request gets a *text* message ``"error: ..."`` naming the problem (openpi's client
   raises it as an error) and the connection and server keep running; a message over
   ``max_message_bytes`` is refused by the websocket layer (close code 1009) before it is read.

``GET /healthz`` answers 200. When a token is set, the websocket handshake must carry
``Authorization: Api-Key <token>`` (openpi's header) or ``Bearer <token>``; binding to a
non-loopback address without a token is refused.

Concurrent clients are batched: a single model worker takes every request queued while it was
busy and runs them as one forward pass (grouped by image size), so N clients cost far less
than N sequential passes and one client alone waits for no batching window.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import ipaddress
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from websockets.asyncio.server import Request, Response, ServerConnection, serve

from embodied_mm.deploy.schema import RESET, ObsSchema, SchemaError
from embodied_mm.deploy.wire import WireError, packb, unpackb
from embodied_mm.features import image_key
from embodied_mm.runtime.inference import ChunkResult

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


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


@dataclass
class _Pending:
    frame: dict[str, Any]
    future: asyncio.Future
    t_enqueued: float


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
    ) -> None:
        if not token and not is_loopback(host):
            raise ValueError(
                f"refusing to serve on non-loopback address {host!r} without --token: anyone on "
                "the network could drive the robot"
            )
        self.policy = policy
        self.host = host
        self.port = port
        self.token = token
        self.max_message_bytes = max_message_bytes
        self.max_batch = max_batch
        self.max_clients = max_clients
        self.clients = 0  # open websocket connections
        meta = policy.metadata()
        self.schema = ObsSchema(
            cameras=tuple(meta["cameras"]),
            state_dim=int(meta["state_dim"]),
            image_shape=image_shape,
        )
        self.metadata = {
            **meta,
            **self.schema.to_metadata(),
            "max_message_bytes": max_message_bytes,
        }
        self._queue: asyncio.Queue[_Pending] | None = None
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
        self.requests_served = 0
        self.errors_sent = 0
        self.batches_run = 0

    # --- HTTP side: health check and authentication, before the websocket upgrade ----------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if self.token:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme not in ("Api-Key", "Bearer") or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
        if self.clients >= self.max_clients:  # each connection holds buffers: bound them
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "too many clients\n")
        return None

    # --- websocket side ---------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        self.clients += 1
        try:
            await self._serve_client(ws)
        finally:
            self.clients -= 1

    async def _serve_client(self, ws: ServerConnection) -> None:
        assert self._queue is not None
        await ws.send(packb(self.metadata))
        prev_total_ms: float | None = None
        async for message in ws:
            t0 = time.perf_counter()
            try:
                if isinstance(message, str):
                    raise SchemaError("expected a binary msgpack message, got text")
                frame = self.schema.validate(unpackb(message, self.max_message_bytes))
            except (WireError, SchemaError) as e:
                self.errors_sent += 1
                await ws.send(f"error: {e}")
                continue
            future = asyncio.get_running_loop().create_future()
            await self._queue.put(_Pending(frame, future, t0))
            try:
                result, timing = await future
            except Exception as e:  # the model failed on this input: report, keep serving
                self.errors_sent += 1
                log.exception("inference failed")
                await ws.send(f"error: inference failed: {type(e).__name__}: {e}")
                continue
            timing = dict(timing)
            if prev_total_ms is not None:
                timing["prev_total_ms"] = prev_total_ms
            reply = {"actions": result.actions.astype(np.float32), "server_timing": timing}
            if result.plan is not None:
                reply["plan"] = result.plan
            await ws.send(packb(reply))
            self.requests_served += 1
            prev_total_ms = (time.perf_counter() - t0) * 1e3

    async def _batcher(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            pending = [await self._queue.get()]
            while len(pending) < self.max_batch and not self._queue.empty():
                pending.append(self._queue.get_nowait())
            if any(p.frame[RESET] for p in pending):
                await loop.run_in_executor(self._model_thread, self.policy.reset)
            # one forward pass per image size (a batch must stack)
            groups: dict[tuple, list[_Pending]] = {}
            for p in pending:
                sig = tuple(p.frame[image_key(c)].shape for c in self.schema.cameras)
                groups.setdefault(sig, []).append(p)
            for group in groups.values():
                t_start = time.perf_counter()
                try:
                    results = await loop.run_in_executor(
                        self._model_thread, self.policy.infer_batch, [p.frame for p in group]
                    )
                except Exception as e:
                    for p in group:
                        if not p.future.done():
                            p.future.set_exception(e)
                    continue
                infer_ms = (time.perf_counter() - t_start) * 1e3
                self.batches_run += 1
                for p, r in zip(group, results, strict=True):
                    timing = {
                        "infer_ms": infer_ms,
                        "queue_ms": (t_start - p.t_enqueued) * 1e3,
                        "batch_size": len(group),
                    }
                    if not p.future.done():
                        p.future.set_result((r, timing))

    async def serve(self, ready: threading.Event | None = None) -> None:
        """Serve until cancelled; sets ``self.port`` to the bound port (useful with port 0)."""
        self._queue = asyncio.Queue()
        batcher = asyncio.create_task(self._batcher())
        try:
            async with serve(
                self._handler,
                self.host,
                self.port,
                process_request=self._process_request,
                max_size=self.max_message_bytes,
                compression=None,  # images do not compress; deflate only adds latency
            ) as server:
                self.port = next(iter(server.sockets)).getsockname()[1]
                log.info("policy server on ws://%s:%d", self.host, self.port)
                if ready is not None:
                    ready.set()
                await server.serve_forever()
        finally:
            batcher.cancel()

    def run(self) -> None:
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
