"""``qwend``: the daemon's life, start-up -> serve -> shutdown, and its command line.

Start-up: config, API keys and persisted state -> services, wired (``qwend.daemon.wiring``;
the lanes not yet started) -> the descriptor limit raised and a reserve kept out of the
listeners' connection caps (``connection_limits``) -> router listener (TCP) -> public
endpoints (TCP, one per ``[[public.endpoints]]``, in process to the router; every
TCP connection behind a guard, ``qwend.daemon.connections``) -> control socket (Unix;
``qwend.daemon.listeners``) -> NPU monitor -> lanes begin starting in the
background -> ``READY=1`` (systemd) with ``STATUS=0/3 lanes ready`` kept current.
Serve: signal handlers only set events; the main coroutine does the work. SIGHUP
reloads the config and the API keys file together (either one broken keeps both old
ones running, and the errors are kept for ``qwenctl status``). Shutdown, on
SIGTERM/SIGINT, in order: ``STOPPING=1``, close the listeners (public ports first),
drain in-flight requests (bounded by ``daemon.drain_timeout_s``), stop every lane in
parallel, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qwend import __version__
from qwend.api.client import PEER_CONNECTIONS
from qwend.config.load import DEFAULT_CONFIG_PATH
from qwend.config.model import Config
from qwend.control.app import CONTROL_KEY
from qwend.daemon.connections import raise_nofile
from qwend.daemon.demo import (
    Source,
    demo_addresses,
    demo_environment,
    demo_path,
    demo_runtime_dir,
)
from qwend.daemon.exit import ExitStatus
from qwend.daemon.fdplan import lane_reserve, plan_fds
from qwend.daemon.listeners import ListenerLimits, Listeners
from qwend.daemon.systemd import (
    Notifier,
    clear_restart_marker,
    restart_requested,
    watchdog_interval,
)
from qwend.daemon.wiring import Services, apply_access_log, build_services, control_app
from qwend.errors import ConfigError, QwendError
from qwend.logs import LogFormat, configure_logging, get_logger
from qwend.public.history import HistoryCompressor
from qwend.public.keyfile import KeySet
from qwend.public.keys import read_api_keys
from qwend.supervisor.reload import ReloadReport

log = get_logger("daemon")


TRAFFIC_PERIOD_S = 2.0
"""How often the router's per-lane completions are passed on to the supervisor."""


def connection_limits(config: Config) -> ListenerLimits:
    """Raise the descriptor limit, keep a reserve out of it, cap each TCP listener with the rest.

    The reserve keeps health probes, lane restarts, npu-smi and the control socket working
    however many connections clients hold (``qwend.daemon.fdplan``).
    """
    soft, hard = raise_nofile()
    conns = config.connections
    plan = plan_fds(
        soft,
        # Each peer's client may hold PEER_CONNECTIONS connections (streams passed on).
        reserve=lane_reserve(len(config.lanes), config.router.max_in_flight_per_lane)
        + PEER_CONNECTIONS * len(config.peers),
        listeners=1
        + len(config.public.endpoints)
        + (config.public.console_listen is not None)
        + (config.cluster.listen is not None),
        configured=conns.max_per_listener,
    )
    log.info(
        "file descriptors",
        limit=plan.limit,
        hard_limit=hard,
        reserve=plan.reserve,
        listeners=plan.listeners,
        max_per_listener=plan.per_listener,
    )
    if plan.lowered:
        log.warning(
            "connection cap lowered to keep the file-descriptor reserve",
            configured=plan.configured,
            in_force=plan.per_listener,
            limit=plan.limit,
            reserve=plan.reserve,
            hint="raise LimitNOFILE (the hard RLIMIT_NOFILE) or lower max_per_listener",
        )
    return ListenerLimits(
        plan.per_listener, conns.header_timeout_s, conns.idle_timeout_s, conns.body_timeout_s
    )


@dataclass
class Daemon:
    """One run of the daemon over its services (see the module docstring)."""

    source: Source
    config: Config
    """The configuration in force (replaced by a successful reload)."""
    services: Services
    notifier: Notifier = field(default_factory=Notifier)
    announce: Callable[[str], None] | None = None
    """``--demo``: prints the addresses for the user."""
    _listeners: Listeners = field(default_factory=Listeners)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _reload: asyncio.Event = field(default_factory=asyncio.Event)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def run(self) -> int:
        """Start up, serve until SIGTERM/SIGINT, shut down; the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        if not await self._start_up():
            await self._shut_down()
            return ExitStatus.ERROR
        await self._serve()
        await self._shut_down()
        return ExitStatus.OK

    # --- start-up -------------------------------------------------------------------

    async def _start_up(self) -> bool:
        """Listeners, NPU monitor, lanes (starting in the background), READY=1."""
        config, services = self.config, self.services
        clear_restart_marker(os.environ)
        control = control_app(services, config, config_path=self.source.path, reload=self.reload)
        try:
            limits = connection_limits(config)
            await self._listeners.open_router(services.router_app, config.router.listen, limits)
            # One session memory for the console and every endpoint: a conversation keeps
            # its compressed turns whichever of them it goes through.
            history = HistoryCompressor(services.router.forwarding.upstream, config.public)
            await self._listeners.open_public(
                config.public, services.router, services.api_keys, limits, history
            )
            await self._listeners.open_console(
                config.public, services.router, services.api_keys, limits, history
            )
            await self._listeners.open_control(control, config.daemon)
            await self._listeners.open_peers(control[CONTROL_KEY], config.cluster, limits)
            await services.monitor.start()
            await services.supervisor.start()
            await services.groups.start()
        except QwendError as exc:
            log.error("qwend cannot start", error=str(exc))
            return False
        status = services.supervisor.status_line()
        self.notifier.ready(status)
        survive = services.supervisor.survive
        log.info("qwend ready", status=status, pid=os.getpid(), lanes_survive_restart=survive)
        interval = watchdog_interval(os.environ)
        if interval is not None and self.notifier.enabled:
            self._tasks.append(asyncio.create_task(self.notifier.watchdog_loop(interval)))
        self._tasks.append(asyncio.create_task(self._status_loop()))
        self._tasks.append(asyncio.create_task(self._traffic_loop()))
        if self.announce is not None:
            self.announce(demo_addresses(config))
        return True

    async def _status_loop(self) -> None:
        """Keeps systemd's STATUS= (``2/3 lanes ready``) current."""
        supervisor = self.services.supervisor
        last = ""
        with supervisor.subscribe() as events:
            async for _ in events:
                line = supervisor.status_line()
                if line != last:
                    self.notifier.status(line)
                    last = line

    async def _traffic_loop(self) -> None:
        # The router counts completed requests per lane; a lane that completes real
        # requests is alive, so its inference probe is skipped (never kill a busy lane).
        router, supervisor = self.services.router, self.services.supervisor
        done: dict[str, int] = {}
        while True:
            await asyncio.sleep(TRAFFIC_PERIOD_S)
            try:
                lanes = router.stats_snapshot().lanes
            except Exception as exc:  # stats must never take the daemon down
                log.warning("router statistics unavailable", error=str(exc))
                continue
            for lane in lanes:
                completed = lane.requests - lane.failures - lane.in_flight
                if completed > done.get(lane.name, 0):
                    supervisor.note_traffic_ok(lane.name)
                done[lane.name] = max(completed, done.get(lane.name, 0))

    # --- serve ----------------------------------------------------------------------

    async def _serve(self) -> None:
        """Until SIGTERM/SIGINT; each SIGHUP reloads (one reload at a time)."""
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
        log.info("SIGHUP: reloading configuration", path=str(self.source.path))
        control = self._listeners.control
        try:
            if control is not None:
                # Through the control context, so `qwenctl status` shows the errors.
                await control.reload()
            else:
                await self.reload()
        except ConfigError:
            pass  # logged by reload(); the old configuration keeps running
        except Exception:
            log.exception("reload failed; the previous configuration may be partly applied")

    async def reload(self) -> ReloadReport:
        """Re-read the configuration and the API keys, and apply them; ConfigError keeps both."""
        supervisor = self.services.supervisor
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                new, keys = load_settings(self.source)
            except ConfigError as exc:
                for issue in exc.issues:
                    log.error("reload refused: configuration error", issue=str(issue))
                self.notifier.ready(supervisor.status_line() + "; reload failed, see the log")
                raise
            self._warn_restart_only(new)
            # Everything is checked by now: from here on the new configuration is applied.
            self.services.api_keys.swap(keys)
            apply_access_log(self.services.router, self.config.access_log, new.access_log)
            try:
                report = await supervisor.reload(new)
                await self.services.groups.reload()
                self.services.router.apply_config(new.router)
                # A reload may change which lane is active for a role: persist it.
                self.services.store.record(supervisor.active_lanes(), None)
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
            ("console and history compression", _console_keys(old), _console_keys(new)),
            ("connections", old.connections, new.connections),
            ("cluster", old.cluster, new.cluster),
            ("peers", old.peers, new.peers),
            (
                "lanes_survive_restart",
                old.daemon.lanes_survive_restart,
                new.daemon.lanes_survive_restart,
            ),
        ):
            if a != b:
                log.warning("setting changed; takes effect when qwend restarts", setting=what)

    # --- shutdown -------------------------------------------------------------------

    async def _shut_down(self) -> None:
        """STOPPING=1, stop accepting, cancel promotions, drain and stop lanes, close."""
        services = self.services
        log.info("qwend stopping")
        self.notifier.stopping()
        await self._listeners.stop_accepting()
        # No promotion may start or go on while lanes are being stopped.
        await services.promoter.aclose()
        drain = self.config.daemon.drain_timeout_s
        # Groups first: this host's groups stop as units, every member host stopping its own.
        await services.groups.stop("qwend shutting down")
        if services.supervisor.survive and restart_requested(os.environ):
            log.info("qwend restarting: lanes keep running for the next qwend")
            await services.supervisor.detach(drain)
        else:
            await services.supervisor.shutdown(drain)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await services.monitor.stop()
        await self._listeners.close()
        if services.peers is not None:
            await services.peers.aclose()
        log.info("qwend stopped")


def _console_keys(config: Config) -> tuple[object, ...]:
    """The ``[public]`` keys the console and history compression read at start-up."""
    p = config.public
    return (
        p.console_image_max_side,
        p.console_compress,
        p.history_budget_tokens,
        p.keep_recent_turns,
    )


def load_settings(source: Source) -> tuple[Config, KeySet | None]:
    """The configuration and the API keys it names; ConfigError with what is wrong in either."""
    config = source.load()
    name = config.path.name if config.path is not None else source.path.name
    return config, read_api_keys(config.public, name)


async def run_daemon(
    source: Source,
    config: Config,
    *,
    extra_env: Mapping[str, str],
    announce: Callable[[str], None] | None,
    keys: KeySet | None,
) -> int:
    """Build the services inside the event loop, then run the daemon until it stops."""
    services = build_services(config, extra_env=extra_env, keys=keys)
    return await Daemon(source, config, services, announce=announce).run()


EPILOG = f"""\
commands:
  qwend check-config [PATH]  validate a configuration and summarise it, without
                             starting anything (qwend check-config --help)

signals:
  SIGHUP            reload the configuration; a rejected one keeps the running one
  SIGTERM, SIGINT   drain the lanes, stop them, exit (under systemd a restart leaves
                    the lanes running for the next qwend to adopt)

exit status:
  {ExitStatus.OK} stopped cleanly, {ExitStatus.ERROR} could not start or failed,
  {ExitStatus.CONFIG} invalid or missing configuration, or a wrong command line
"""


def build_parser() -> argparse.ArgumentParser:
    """``qwend`` command line."""
    parser = argparse.ArgumentParser(
        prog="qwend",
        description="Run Qwen3.5 lanes on Ascend NPUs: supervisor, router, control.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # --demo runs its own embedded configuration: a --config beside it would be ignored.
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help="qwend.toml (default: %(default)s)",
    )
    source.add_argument(
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
        config, keys = load_settings(source)
    except ConfigError as exc:
        for issue in exc.issues:
            log.error("configuration error", issue=str(issue))
        sys.stderr.write(f"qwend: {exc}\n")
        return ExitStatus.CONFIG
    announce = _print if args.demo else None
    try:
        return asyncio.run(
            run_daemon(source, config, extra_env=extra_env, announce=announce, keys=keys)
        )
    except QwendError as exc:
        log.error("qwend failed", error=str(exc))
        return ExitStatus.ERROR
