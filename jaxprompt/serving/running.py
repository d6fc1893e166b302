"""Running a PromptServer: on this thread's event loop until SIGTERM/SIGINT (`serve`, what
`jaxprompt serve` runs), or in a background thread (`ServerThread`: tests, benchmarks)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

from aiohttp import web


async def serve(
    server,
    host: str,
    port: int,
    *,
    ready=None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Serves until SIGTERM/SIGINT (or `stop` is set), then drains and returns."""
    stop = stop or asyncio.Event()
    runner = web.AppRunner(
        server.make_app(),
        handle_signals=False,
        access_log=None,
        keepalive_timeout=server.serve.idle_timeout_s,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    bound = runner.addresses[0][1]
    if ready is not None:
        ready(bound)
    await stop.wait()
    server.draining = True  # new requests: 503; the ones in flight finish
    deadline = time.monotonic() + server.serve.shutdown_timeout_s
    while server.inflight and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.to_thread(server.batcher.stop, server.serve.shutdown_timeout_s)
    await runner.cleanup()


class ServerThread:
    """Runs a started PromptServer on its own event loop in a thread (tests, benchmarks)."""

    def __init__(self, server, host: str = "127.0.0.1", port: int = 0):
        self.server, self.port = server, None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, args=(host, port), daemon=True)
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the server did not start within 60 s")

    def _main(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()

        def ready(bound):
            self.port = bound
            self._ready.set()

        self._loop.run_until_complete(
            serve(self.server, host, port, ready=ready, stop=self._stop, handle_signals=False)
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 60) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)


__all__ = ["ServerThread", "serve"]
