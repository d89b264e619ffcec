"""One simulated spoke: object store, Job controller and HTTP API, started in-process or by `__main__`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os

from aiohttp import web

from clusters.simulator.api import SpokeApi
from clusters.simulator.controller import JobController
from clusters.simulator.spec import SpokeSpec, spoke_spec
from clusters.simulator.store import Store
from services.common.clock import Clock

log = logging.getLogger("caspian.spoke")

DEFAULT_NAMESPACES = ("caspian-jobs",)


class SpokeSimulator:
    def __init__(
        self,
        name: str,
        clock: Clock,
        *,
        spec: SpokeSpec | None = None,
        namespaces: tuple[str, ...] = DEFAULT_NAMESPACES,
        state_file: str | None = None,
        bookmark_seconds: float = 5.0,
        default_runtime_seconds: float = 60.0,
        history: int = 10_000,
        save_interval_seconds: float = 0.2,
    ):
        self.name = name
        self.clock = clock
        self.spec = spec or spoke_spec(name)
        self.state_file = state_file
        self.save_interval_seconds = save_interval_seconds
        self.store = Store(clock, history)
        self.controller = JobController(self.store, clock, default_runtime_seconds)
        self.api = SpokeApi(name, self.store, self.controller, bookmark_seconds)
        self.namespaces = namespaces
        self.host = ""
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self._saving: asyncio.Future | None = None  # the snapshot write in flight, if any
        self._dirty = asyncio.Event()
        self.store.listeners.append(lambda _event: self._dirty.set())

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        state = await asyncio.to_thread(_read_state, self.state_file) if self.state_file else None
        restored = state is not None
        if state is not None:
            self.store.load(state)
        self.controller.bootstrap(self.spec, self.namespaces)
        if restored:
            self.controller.resume()
        self._runner = web.AppRunner(self.api.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        self.host = host
        self.port = int(self._runner.addresses[0][1])  # the port chosen for port 0
        self.api.address = f"{host}:{self.port}"
        self._tasks.append(asyncio.create_task(self.controller.run(), name=f"{self.name}-controller"))
        if self.state_file:
            self._tasks.append(asyncio.create_task(self._keep_saving(), name=f"{self.name}-saver"))
        log.info("spoke serving", extra={"spoke": self.name, "url": self.url, "restored": restored})
        return self.port

    async def _keep_saving(self) -> None:
        """Write the state at most every save_interval_seconds while it changes (objects are never mutated
        in place once stored, so a snapshot taken on the loop can be written from a thread). Cancelling
        this task does not stop a write already in its thread, so the write is shielded and `stop` waits
        for it before the final save: two writers of the same file would race on it."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._saving = asyncio.ensure_future(asyncio.to_thread(self._save_snapshot, self.store.dump()))
            await asyncio.shield(self._saving)
            await asyncio.sleep(self.save_interval_seconds)

    def _save_snapshot(self, snapshot: dict) -> None:
        if self.state_file:
            _write_state(self.state_file, snapshot)

    async def stop(self) -> None:
        self.api.closing.set()
        for watcher in list(self.store.watchers):
            watcher.queue.put_nowait(None)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._saving is not None:
            with contextlib.suppress(Exception):
                await self._saving  # the last periodic write finishes before the final one starts
            self._saving = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.state_file:
            await asyncio.to_thread(self._save_snapshot, self.store.dump())


def _read_state(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _write_state(path: str, snapshot: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(snapshot, fh, separators=(",", ":"))
    os.replace(tmp, path)
