"""``qwend``: the daemon. Wiring, signals, reload and ordered shutdown.

Start order: config and persisted state -> supervisor (lanes not yet started)
-> router listener (TCP) -> public endpoints (TCP, one per ``[[public.endpoints]]``,
in process to the router) -> control socket (Unix) -> NPU monitor -> lanes begin
starting in the background -> ``READY=1`` (systemd) with ``STATUS=0/3 lanes
ready`` kept current. Signal handlers only set events; the main coroutine does
the work. SIGHUP reloads (a broken config keeps the old one running and its
errors are kept for ``qwenctl status``); SIGTERM/SIGINT shut down in order:
``STOPPING=1``, close the listeners (public ports first), drain in-flight requests (bounded by
``daemon.drain_timeout_s``), stop every lane in parallel, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from qwend import __version__
from qwend.config.load import DEFAULT_CONFIG_PATH
from qwend.config.model import Config, LaneConfig
from qwend.control.app import (
    CONTROL_KEY,
    create_control_socket,
    make_control_app,
    remove_control_socket,
)
from qwend.daemon.demo import Source, demo_environment, demo_path, demo_runtime_dir
from qwend.daemon.exit import ExitStatus
from qwend.daemon.systemd import Notifier, watchdog_interval
from qwend.errors import ConfigError, QwendError
from qwend.logs import LogFormat, configure_logging, get_logger
from qwend.npu.monitor import NpuMonitor
from qwend.promotion.promoter import Promoter
from qwend.public.app import make_public_app
from qwend.public.keys import ApiKeys
from qwend.router.app import make_router_app
from qwend.router.router import ROUTER_KEY
from qwend.routing.lanetable import LaneTable
from qwend.supervisor.supervisor import ReloadReport, Supervisor


def _log() -> Any:
    # Looked up per use: a module-level bound logger would freeze structlog's
    # configuration as it was at import, before configure_logging().
    return get_logger("daemon")


CONSOLE_IGNORED = "the web console is not part of this version; console_listen is ignored"


@dataclass
class Daemon:
    """One run of the daemon (see the module docstring)."""

    source: Source
    config: Config
    notifier: Notifier = field(default_factory=Notifier)
    extra_env: dict[str, str] = field(default_factory=dict)
    announce: Callable[[str], None] | None = None
    """``--demo``: prints the addresses for the user."""
    warnings: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _reload: asyncio.Event = field(default_factory=asyncio.Event)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _parts: dict[str, Any] = field(default_factory=dict)
    _runners: list[web.BaseRunner] = field(default_factory=list)
    _public_runners: list[web.BaseRunner] = field(default_factory=list)
    _public_sites: list[web.TCPSite] = field(default_factory=list)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    # --- build ---------------------------------------------------------------

    def _build(self) -> Supervisor:
        from qwend.promotion.state import StateStore, reconcile_active

        config = self.config
        store = StateStore(config.daemon.state_dir)
        state, warning = store.load_or_default()
        if warning:
            self.warnings.append(warning)
        active, more = reconcile_active(state, config)
        self.warnings.extend(more)
        for text in self.warnings:
            _log().warning("startup warning", warning=text)
        table = LaneTable()
        router_app = self._router_app(config, table)
        router = router_app[ROUTER_KEY]
        monitor = self._monitor(config)
        supervisor = Supervisor(
            config,
            table,
            active=active,
            traffic=router,
            pre_start=self._pre_start if monitor is not None and monitor.available else None,
            extra_env=self.extra_env,
        )
        self._parts.update(
            store=store, router_app=router_app, router=router, monitor=monitor, sup=supervisor
        )
        return supervisor

    async def _pre_start(self, lane: LaneConfig) -> str | None:
        # The NPU check polls npu-smi; its chip name picks the Ascend env defaults.
        monitor = self._parts["monitor"]
        warning: str | None = await monitor.pre_start(lane)
        supervisor: Supervisor = self._parts["sup"]
        reading = monitor.view().reading
        if supervisor.chip_family is None and reading is not None and reading.npus:
            supervisor.chip_family = reading.npus[0].name
            _log().info("chip family for lane environments", chip=supervisor.chip_family)
        return warning

    def _router_app(self, config: Config, table: LaneTable) -> web.Application:
        return make_router_app(config.router, table)

    def _monitor(self, config: Config) -> NpuMonitor:
        def pids() -> dict[str, int]:
            sup = self._parts.get("sup")
            return sup.lane_pids() if sup is not None else {}

        def npus() -> dict[str, tuple[int, ...]]:
            sup = self._parts.get("sup")
            return sup.lane_npus() if sup is not None else {}

        return NpuMonitor(config.monitor, pids, npus)

    def _control_app(self, supervisor: Supervisor) -> web.Application:
        config = self.config
        promoter = Promoter(
            supervisor,
            self._parts["router"],
            self._parts["store"],
            self._parts["monitor"],
            drain_timeout_s=config.daemon.drain_timeout_s,
        )
        self._parts["promoter"] = promoter
        return make_control_app(
            supervisor,
            promoter,
            router=self._parts["router"],
            monitor=self._parts["monitor"],
            reload_cb=self.reload,
            version=__version__,
            config_path=self.source.path,
            control_socket=config.daemon.control_socket,
            router_url=config.router.listen.url,
            started_at=time.time(),
            warnings=lambda: tuple(self.warnings),
        )

    # --- listeners -------------------------------------------------------------

    async def _listen(self, supervisor: Supervisor) -> None:
        config = self.config
        router_app: web.Application | None = self._parts["router_app"]
        if router_app is not None:
            runner = web.AppRunner(
                router_app, handle_signals=False, shutdown_timeout=1.0, access_log=None
            )
            await runner.setup()
            self._runners.append(runner)
            listen = config.router.listen
            site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise QwendError(
                    f"cannot listen on {listen} for the router: {exc.strerror or exc};"
                    " stop what uses that port or change [router] listen"
                ) from None
            self._parts["router_site"] = site
            _log().info("router listening", url=listen.url)
            await self._listen_public()
        control_app = self._control_app(supervisor)
        if control_app is not None:
            path = config.daemon.control_socket
            sock = create_control_socket(path, config.daemon.socket_group)
            runner = web.AppRunner(control_app, handle_signals=False, shutdown_timeout=1.0)
            await runner.setup()
            self._runners.append(runner)
            csite = web.SockSite(runner, sock)
            await csite.start()
            self._parts["control_app"] = control_app
            _log().info("control socket listening", path=str(path))

    async def _listen_public(self) -> None:
        """One listener per ``[[public.endpoints]]``, each handing requests to the router."""
        public = self.config.public
        if public.console_listen is not None:
            _log().warning(CONSOLE_IGNORED, console_listen=str(public.console_listen))
        keys = ApiKeys.load(public.api_keys_file)  # ApiKeysError (a QwendError) names the file
        self._parts["api_keys"] = keys
        if keys.enabled:
            _log().info("API keys loaded", file=str(keys.path), keys=len(keys))
        for endpoint in public.endpoints:
            app = make_public_app(endpoint, self._parts["router"], keys)
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
            await runner.setup()
            self._public_runners.append(runner)
            listen = endpoint.listen
            site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise QwendError(
                    f"cannot listen on {listen} for the public endpoint {endpoint.target}:"
                    f" {exc.strerror or exc}; stop what uses port {listen.port} or change"
                    " its [[public.endpoints]] listen"
                ) from None
            self._public_sites.append(site)
            _log().info("public endpoint listening", url=listen.url, target=endpoint.target)

    # --- run ------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        supervisor = self._build()
        try:
            await self._listen(supervisor)
            monitor = self._parts["monitor"]
            if monitor is not None:
                await monitor.start()
            await supervisor.start()
        except QwendError as exc:
            _log().error("qwend cannot start", error=str(exc))
            await self._shutdown(supervisor)
            return ExitStatus.ERROR
        self.notifier.ready(supervisor.status_line())
        _log().info("qwend ready", status=supervisor.status_line(), pid=os.getpid())
        self._start_background(supervisor)
        if self.announce is not None:
            self._announce()
        await self._serve()
        await self._shutdown(supervisor)
        return ExitStatus.OK

    def _announce(self) -> None:
        assert self.announce is not None
        config = self.config
        lines = [f"qwend demo: router   {config.router.listen.url}/v1"]
        for endpoint in config.public.endpoints:
            lines.append(f"qwend demo: public   {endpoint.listen.url}/v1  -> {endpoint.target}")
        lines.append(f"qwend demo: logs     {config.daemon.log_dir}")
        lines.append(f"export QWEND_SOCKET={config.daemon.control_socket}")
        self.announce("\n".join(lines) + "\n")

    def _start_background(self, supervisor: Supervisor) -> None:
        interval = watchdog_interval(os.environ)
        if interval is not None and self.notifier.enabled:
            self._tasks.append(asyncio.create_task(self.notifier.watchdog_loop(interval)))
        self._tasks.append(asyncio.create_task(self._status_loop(supervisor)))
        if self._parts.get("router") is not None:
            self._tasks.append(asyncio.create_task(self._traffic_loop(supervisor)))

    async def _status_loop(self, supervisor: Supervisor) -> None:
        queue = supervisor.subscribe()
        last = ""
        try:
            while True:
                await queue.get()
                line = supervisor.status_line()
                if line != last:
                    self.notifier.status(line)
                    last = line
        finally:
            supervisor.unsubscribe(queue)

    async def _traffic_loop(self, supervisor: Supervisor, period: float = 2.0) -> None:
        # The router counts completed requests per lane; a lane that completes real
        # requests is alive, so its inference probe is skipped (never kill a busy lane).
        router = self._parts["router"]
        done: dict[str, int] = {}
        while True:
            await asyncio.sleep(period)
            try:
                lanes = router.stats_snapshot().lanes
            except Exception as exc:  # stats must never take the daemon down
                _log().warning("router statistics unavailable", error=str(exc))
                continue
            for lane in lanes:
                completed = lane.requests - lane.failures - lane.in_flight
                if completed > done.get(lane.name, 0):
                    supervisor.note_traffic_ok(lane.name)
                done[lane.name] = max(completed, done.get(lane.name, 0))

    async def _serve(self) -> None:
        reload_task: asyncio.Task[None] | None = None
        while not self._stop.is_set():
            stop = asyncio.create_task(self._stop.wait())
            hup = asyncio.create_task(self._reload.wait())
            await asyncio.wait({stop, hup}, return_when=asyncio.FIRST_COMPLETED)
            for task in (stop, hup):
                task.cancel()
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                if reload_task is None or reload_task.done():
                    reload_task = asyncio.create_task(self._reload_from_signal())
        if reload_task is not None and not reload_task.done():
            reload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reload_task

    async def _reload_from_signal(self) -> None:
        _log().info("SIGHUP: reloading configuration", path=str(self.source.path))
        control_app = self._parts.get("control_app")
        try:
            if control_app is not None:
                # Through the control context, so `qwenctl status` shows the errors.
                await control_app[CONTROL_KEY].reload()
            else:
                await self.reload()
        except ConfigError:
            pass  # logged by reload(); the old configuration keeps running
        except Exception:
            _log().exception("reload failed; the previous configuration may be partly applied")

    async def reload(self) -> ReloadReport:
        """Re-read the configuration and apply it; ConfigError keeps the old one."""
        supervisor: Supervisor = self._parts["sup"]
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                new = self.source.load()
            except ConfigError as exc:
                for issue in exc.issues:
                    _log().error("reload refused: configuration error", issue=str(issue))
                self.notifier.ready(supervisor.status_line() + "; reload failed, see the log")
                raise
            self._warn_restart_only(new)
            keys: ApiKeys | None = self._parts.get("api_keys")
            if keys is not None:
                keys.reload(new.public.api_keys_file)  # a broken file keeps the old keys
            try:
                report = await supervisor.reload(new)
                self._parts["router"].apply_config(new.router)
                # A reload may change which lane is active for a role: persist it.
                self._parts["store"].record(supervisor.active_lanes(), None)
            finally:
                # systemd waits for READY=1 after RELOADING=1, whatever happened.
                self.config = supervisor.config
                self.notifier.ready(supervisor.status_line())
            return report

    def _warn_restart_only(self, new: Config) -> None:
        old = self.config
        for what, a, b in (
            ("router listen", old.router.listen, new.router.listen),
            ("control socket", old.daemon.control_socket, new.daemon.control_socket),
            ("monitor", old.monitor, new.monitor),
            ("public endpoints", old.public.endpoints, new.public.endpoints),
            ("console_listen", old.public.console_listen, new.public.console_listen),
        ):
            if a != b:
                _log().warning("setting changed; takes effect when qwend restarts", setting=what)

    async def _shutdown(self, supervisor: Supervisor) -> None:
        _log().info("qwend stopping")
        self.notifier.stopping()
        control_app = self._parts.get("control_app")
        if control_app is not None:
            control_app[CONTROL_KEY].closing.set()
        # Stop accepting: public ports first, then the router's; in-flight requests go on.
        for public_site in self._public_sites:
            await public_site.stop()
        router_site = self._parts.get("router_site")
        if router_site is not None:
            await router_site.stop()
        promoter = self._parts.get("promoter")
        if promoter is not None:
            # No promotion may start or go on while lanes are being stopped.
            await promoter.aclose()
        await supervisor.shutdown(self.config.daemon.drain_timeout_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        monitor = self._parts.get("monitor")
        if monitor is not None:
            await monitor.stop()
        for runner in (*self._public_runners, *self._runners):
            await runner.cleanup()
        if control_app is not None:
            remove_control_socket(self.config.daemon.control_socket)
        _log().info("qwend stopped")


def build_parser() -> argparse.ArgumentParser:
    """``qwend`` command line."""
    parser = argparse.ArgumentParser(
        prog="qwend", description="Run Qwen3.5 lanes on Ascend NPUs: supervisor, router, control."
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG_PATH, help="qwend.toml (default: %(default)s)"
    )
    parser.add_argument(
        "--demo", action="store_true", help="run the embedded demo on simulated lanes"
    )
    parser.add_argument(
        "--log-format", choices=[f.value for f in LogFormat], default=LogFormat.AUTO.value
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--version", action="version", version=f"qwend {__version__}")
    return parser


def _print(text: str) -> None:
    # The demo's addresses are for the person who typed `qwend --demo`, not the log.
    sys.stdout.write(text)
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the daemon; returns the exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(LogFormat(args.log_format), args.log_level)
    extra_env: dict[str, str] = {}
    if args.demo:
        runtime = demo_runtime_dir(os.environ)
        source = Source(demo_path(), demo_runtime=runtime)
        extra_env = demo_environment(runtime)
        os.environ.update(extra_env)  # the monitor runs `qwend-sim npu-smi` too
    else:
        source = Source(args.config)
    try:
        config = source.load()
    except ConfigError as exc:
        for issue in exc.issues:
            _log().error("configuration error", issue=str(issue))
        sys.stderr.write(f"qwend: {exc}\n")
        return ExitStatus.CONFIG
    daemon = Daemon(source, config, extra_env=extra_env, announce=_print if args.demo else None)
    try:
        return asyncio.run(daemon.run())
    except QwendError as exc:
        _log().error("qwend failed", error=str(exc))
        return ExitStatus.ERROR
