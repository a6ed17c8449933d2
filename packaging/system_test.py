#!/usr/bin/env python3
"""Install the qwend .deb on a real systemd and exercise it, then purge it.

A Debian bookworm minbase rootfs (made once with debootstrap, cached) is booted with
``systemd-nspawn --boot --volatile=overlay`` (the cache stays pristine) and driven with
``nsenter``. Never boots systemd on the host's own root filesystem. Needs root.

    packaging/system-test [--deb dist/qwend_*.deb] [--cache /var/cache/qwend-ci]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Everything the package Depends on is pre-installed: the install runs offline.
INCLUDE = "systemd-sysv,ca-certificates,dbus,python3,adduser,passwd,procps,man-db"
MIRROR = os.environ.get("QWEND_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}
TEST_DROPIN = "/etc/systemd/system/qwend.service.d/90-system-test.conf"
DEMO = "/usr/share/qwend/examples/demo"
PURGED_PATHS = (
    "/usr/lib/qwend",
    "/etc/qwend",
    "/var/lib/qwend",
    "/var/log/qwend",
    "/run/qwend",
    "/etc/systemd/system/qwend.service.d",
    "/lib/systemd/system/qwend.service",
    "/usr/bin/qwend",
    "/usr/bin/qwenctl",
    "/usr/bin/qwen-tui",
    "/usr/bin/qwend-sim",
    "/usr/share/qwend",
    "/usr/share/doc/qwend",
)


class TestFailure(Exception):
    """A check of the system test failed."""


def log(msg: str) -> None:
    """Progress on stderr, flushed (the pytest wrapper shows it on failure)."""
    print(f"system-test: {msg}", file=sys.stderr, flush=True)


def step(name: str) -> None:
    """Announce a step with its wall-clock offset."""
    log(f"[{time.monotonic() - START:6.1f}s] {name}")


START = time.monotonic()


def ensure_host_tools() -> None:
    """Install debootstrap and systemd-nspawn with apt-get when they are missing."""
    need = {"debootstrap": "debootstrap", "systemd-nspawn": "systemd-container"}
    missing = [pkg for tool, pkg in need.items() if shutil.which(tool) is None]
    if missing:
        step(f"installing {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env)


def ensure_rootfs(cache: Path) -> Path:
    """Return the cached bookworm rootfs, creating it with debootstrap when missing."""
    root = cache / "bookworm-rootfs"
    stamp = cache / "bookworm-rootfs.include"
    if stamp.is_file() and stamp.read_text().strip() == INCLUDE:
        return root
    step(f"debootstrap bookworm into {root} (cached for later runs)")
    tmp = cache / "bookworm-rootfs.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={INCLUDE}", "bookworm", str(tmp), MIRROR],
        check=True,
    )
    subprocess.run(["chroot", str(tmp), "apt-get", "clean"], check=True)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    stamp.write_text(INCLUDE + "\n")
    return root


@dataclass
class Container:
    """A booted nspawn container and the PID of its init."""

    nspawn: subprocess.Popen[bytes]
    init_pid: int

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the container (all its namespaces, its root)."""
        cmd = ["nsenter", "-t", str(self.init_pid), "-a", "-r", "-w", "env", "-i"]
        cmd += [f"{k}={v}" for k, v in CONTAINER_ENV.items()]
        result = subprocess.run(
            [*cmd, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            check=False,
        )
        if check and result.returncode != 0:
            raise TestFailure(
                f"`{' '.join(argv)}` exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def out(self, *argv: str, timeout: float = 120) -> str:
        """Stdout of a command that must succeed, stripped."""
        return self.run(*argv, timeout=timeout).stdout.strip()

    def write(self, path: str, text: str) -> None:
        """Write a file inside the container."""
        self.run("sh", "-c", f'mkdir -p "$(dirname {path})" && cat > {path}', stdin=text)


def find_init(nspawn_pid: int, timeout: float = 30) -> int:
    """The host PID of the container's PID 1 (a descendant of nspawn, NSpid ... 1)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                lines = status.read_text().splitlines()
                fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
                nspid = fields.get("NSpid", "").split()
                if len(nspid) >= 2 and nspid[-1] == "1" and _descends(int(nspid[0]), nspawn_pid):
                    return int(nspid[0])
        time.sleep(0.2)
    raise TestFailure("the container's init did not appear")


def _descends(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is ``ancestor`` or one of its descendants."""
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


@contextlib.contextmanager
def booted(root: Path, dist: Path) -> Iterator[Container]:
    """Boot the rootfs (volatile overlay, private network); always tear it down."""
    step("booting the container")
    log_file = (REPO / "build" / "system-test-console.log").open("wb")
    nspawn = subprocess.Popen(
        [
            "systemd-nspawn",
            "-D",
            str(root),
            "--boot",
            "--volatile=overlay",
            "--register=no",
            "--keep-unit",
            "--console=passive",
            "--private-network",
            f"--machine=qwend-ci-{os.getpid()}",
            f"--bind-ro={dist}:/debs",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        container = Container(nspawn, find_init(nspawn.pid))
        state = boot_state(container)
        step(f"container up: {state}")
        if state == "degraded":
            log(container.run("systemctl", "--failed", "--no-legend", check=False).stdout)
        yield container
    finally:
        step("tearing the container down")
        with contextlib.suppress(ProcessLookupError):
            nspawn.send_signal(signal.SIGTERM)
        try:
            nspawn.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(nspawn.pid, signal.SIGKILL)
            nspawn.wait(timeout=30)
        log_file.close()


def boot_state(c: Container, timeout: float = 120) -> str:
    """Wait until the container's systemd finished booting; its final state."""
    deadline = time.monotonic() + timeout
    while True:
        # Fails with "Failed to connect to bus" until PID 1 listens: retry.
        result = c.run("systemctl", "is-system-running", "--wait", timeout=timeout, check=False)
        state = result.stdout.strip()
        if state in ("running", "degraded"):
            return state
        if time.monotonic() > deadline:
            raise TestFailure(f"container did not boot: {state} {result.stderr}")
        time.sleep(0.2)


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def status(c: Container) -> dict[str, object]:
    """``qwenctl status --json`` as a dict (empty when the daemon does not answer)."""
    result = c.run("qwenctl", "status", "--json", check=False, timeout=30)
    if result.returncode != 0:
        return {}
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def lanes(c: Container) -> dict[str, dict[str, object]]:
    """Lane name -> lane info from qwenctl status."""
    found = status(c).get("lanes")
    if not isinstance(found, list):
        return {}
    return {str(lane["name"]): lane for lane in found if isinstance(lane, dict)}


def active_ready(c: Container) -> bool:
    """Every active lane is ready (and there is at least one)."""
    info = lanes(c)
    active = [lane for lane in info.values() if lane.get("active")]
    return bool(active) and all(lane.get("state") == "ready" for lane in active)


def main_pid(c: Container) -> int:
    """qwend's MainPID as systemd knows it (0 when not running)."""
    return int(c.out("systemctl", "show", "-p", "MainPID", "--value", "qwend"))


def is_active(c: Container) -> str:
    """``systemctl is-active qwend``."""
    return c.run("systemctl", "is-active", "qwend", check=False).stdout.strip()


def container_processes(c: Container) -> list[tuple[int, int, str]]:
    """(host pid, uid, cmdline) of every process in the container's PID namespace."""
    target = Path(f"/proc/{c.init_pid}/ns/pid").readlink()
    procs = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if (entry / "ns" / "pid").readlink() != target:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            procs.append((int(entry.name), entry.stat().st_uid, cmdline.strip()))
    return procs


def check_install(c: Container, deb: Path) -> None:
    """Install offline; the unit is enabled, verified, and starts with no lanes."""
    # An Ascend host has the driver's group: postinst must add qwend to it and write
    # the SupplementaryGroups= drop-in.
    c.run("groupadd", "--system", "HwHiAiUser")
    step(f"apt-get install /debs/{deb.name}")
    c.run("apt-get", "install", "-y", "--no-install-recommends", f"/debs/{deb.name}", timeout=300)
    if c.run("getent", "passwd", "qwend", check=False).returncode != 0:
        raise TestFailure("postinst did not create the qwend user")
    if "HwHiAiUser" not in c.out("id", "-nG", "qwend").split():
        raise TestFailure("postinst did not add qwend to group HwHiAiUser")
    groups = c.out("systemctl", "show", "-p", "SupplementaryGroups", "--value", "qwend")
    if groups != "HwHiAiUser":
        raise TestFailure(f"SupplementaryGroups={groups!r}, expected the HwHiAiUser drop-in")
    enabled = c.run("systemctl", "is-enabled", "qwend", check=False).stdout.strip()
    if enabled != "enabled":
        raise TestFailure(f"qwend.service is {enabled!r} after install, expected enabled")
    step("systemd-analyze verify qwend.service (installed)")
    verify = c.run("systemd-analyze", "verify", "qwend.service", check=False)
    if verify.returncode != 0 or verify.stdout.strip() or verify.stderr.strip():
        raise TestFailure(f"systemd-analyze verify:\n{verify.stdout}{verify.stderr}")
    security = c.run("systemd-analyze", "security", "qwend.service", check=False)
    log(security.stdout.strip().splitlines()[-1] if security.stdout.strip() else security.stderr)


def check_commands(c: Container) -> None:
    """The four commands run from /usr/bin with the packaged venv."""
    step("qwend, qwenctl, qwen-tui, qwend-sim --help")
    for cmd in ("qwend", "qwenctl", "qwen-tui", "qwend-sim"):
        c.run(cmd, "--help", timeout=60)


def chat_probe(model: str) -> str:
    """Python source that POSTs one chat completion to the router and prints 'STATUS body'."""
    return (
        "import json, sys, urllib.error, urllib.request\n"
        "req = urllib.request.Request('http://127.0.0.1:18088/v1/chat/completions',"
        " data=json.dumps({'model': sys.argv[1], 'max_tokens': 8,"
        " 'messages': [{'role': 'user', 'content': 'hi'}]}).encode(),"
        " headers={'Content-Type': 'application/json'})\n"
        "try:\n    r = urllib.request.urlopen(req, timeout=30)\n"
        "    print(r.status, r.read().decode()[:300])\n"
        "except urllib.error.HTTPError as e:\n    print(e.code, e.read().decode()[:300])\n"
    ).replace("sys.argv[1]", repr(model))


def chat(c: Container, model: str) -> str:
    """POST one chat completion to the router from inside the container: 'STATUS body'."""
    return c.out("/usr/lib/qwend/venv/bin/python3", "-c", chat_probe(model))


def check_default_config(c: Container) -> None:
    """The shipped config (no lanes) starts; the router answers 503 with a message."""
    step("default config: qwend active with no lanes")
    wait_for("qwend active with the default config", lambda: is_active(c) == "active", 60)
    answer = chat(c, "x")
    log(f"router without lanes: {answer}")
    if not answer.startswith("503"):
        raise TestFailure(f"router without lanes answered {answer!r}, expected 503")


def configure_demo(c: Container) -> None:
    """The demo topology on qwend-sim lanes; a short watchdog for the test."""
    step("configuring the qwend-sim demo lanes and a 10 s watchdog")
    c.run("sh", "-c", f"cp {DEMO}/qwend.toml /etc/qwend/qwend.toml")
    c.run("sh", "-c", f"cp {DEMO}/lanes.d/*.toml /etc/qwend/lanes.d/")
    # More restarts than the unit's start limit allows in 10 minutes happen on purpose here.
    c.write(
        TEST_DROPIN,
        "[Unit]\nStartLimitBurst=20\n"
        "[Service]\nWatchdogSec=10s\nRestartSec=1s\nTimeoutAbortSec=10s\n",
    )
    c.run("systemctl", "daemon-reload")
    c.run("qwend", "check-config", "/etc/qwend/qwend.toml")
    c.run("systemctl", "restart", "qwend", timeout=180)
    if is_active(c) != "active":
        raise TestFailure(f"qwend is {is_active(c)!r} after restart with the demo config")
    wait_for("the active lanes to be ready", lambda: active_ready(c), 120)
    log(c.out("qwenctl", "status"))
    answer = chat(c, "Qwen3.5-9B")
    if not answer.startswith("200") or "choices" not in answer:
        raise TestFailure(f"a chat completion through the router answered {answer!r}")


def check_sandbox(c: Container) -> None:
    """Lanes run as qwend, without new privileges, in the service's cgroup."""
    qwend_uid = int(c.out("id", "-u", "qwend"))
    sims = [p for p in container_processes(c) if "qwend-sim" in p[2] and " serve " in p[2]]
    if not sims:
        raise TestFailure("no qwend-sim lane process found")
    for pid, uid, cmd in sims:
        status_text = Path(f"/proc/{pid}/status").read_text()
        if uid != qwend_uid or "NoNewPrivs:\t1" not in status_text:
            raise TestFailure(f"lane {cmd!r} runs as uid {uid} or without NoNewPrivs")


def check_promote(c: Container) -> None:
    """``qwenctl promote lane recurrent_v2 --wait`` succeeds and sticks."""
    step("qwenctl promote lane recurrent_v2 --wait")
    c.run("qwenctl", "promote", "lane", "recurrent_v2", "--wait", timeout=180)
    info = lanes(c)
    lane = info.get("recurrent_v2", {})
    if not lane.get("active") or lane.get("state") != "ready":
        raise TestFailure(f"recurrent_v2 after promotion: {lane}")


def journal_entries(c: Container, *args: str) -> list[dict[str, object]]:
    """``journalctl -u qwend -o json ARGS``, one dict per entry."""
    text = c.out("journalctl", "-u", "qwend", "--no-pager", "-o", "json", *args)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check_journal(c: Container) -> None:
    """Native journal entries: priorities filter with -p, fields filter by lane."""
    step("journal: -p warning shows a provoked warning, LANE= filters, fields present")
    since = "@" + c.out("date", "+%s").strip()
    # Provoke a refusal: a lane file that does not parse, reloaded, then removed.
    c.write("/etc/qwend/lanes.d/zz-broken.toml", "[lane]\nname = \n")
    refused = c.run("qwenctl", "reload", check=False, timeout=60)
    c.run("rm", "-f", "/etc/qwend/lanes.d/zz-broken.toml")
    if refused.returncode == 0:
        raise TestFailure("qwenctl reload accepted a lane file that does not parse")
    warnings = journal_entries(c, "-p", "warning", "--since", since)
    if not any("reload refused" in str(e.get("MESSAGE", "")) for e in warnings):
        raise TestFailure(f"journalctl -p warning does not show the refused reload: {warnings}")
    if any(int(str(e.get("PRIORITY", "6"))) > 4 for e in warnings):
        raise TestFailure("journalctl -p warning shows entries below warning")
    everything = journal_entries(c, "--since", "-30min")
    if not any(str(e.get("PRIORITY")) == "6" for e in everything):
        raise TestFailure("no info entries: every entry has the same priority")
    stable = journal_entries(c, "LANE=stable")
    if not stable or any(e.get("LANE") != "stable" for e in stable):
        raise TestFailure(f"journalctl -u qwend LANE=stable: {stable[:3]}")
    entry = stable[-1]
    for field in ("COMPONENT", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "MESSAGE"):
        if not entry.get(field):
            raise TestFailure(f"journal entry without {field}: {entry}")
    log(f"journal: {len(warnings)} warning entries, {len(stable)} LANE=stable entries")


def lane_pids(c: Container) -> dict[str, object]:
    """Active lane name -> pid."""
    return {name: lane.get("pid") for name, lane in lanes(c).items() if lane.get("active")}


def check_reload(c: Container) -> None:
    """``systemctl reload qwend`` keeps the daemon and every lane process."""
    step("systemctl reload qwend keeps lane PIDs")
    before_main, before = main_pid(c), lane_pids(c)
    c.run("systemctl", "reload", "qwend", timeout=60)
    wait_for("qwend active after reload", lambda: is_active(c) == "active", 30)
    wait_for("the active lanes after reload", lambda: active_ready(c), 60)
    after_main, after = main_pid(c), lane_pids(c)
    if before_main != after_main or before != after:
        raise TestFailure(f"reload changed PIDs: {before_main} {before} -> {after_main} {after}")


def running_lanes(c: Container) -> dict[str, object]:
    """Lane name -> pid of every lane with a process."""
    return {name: lane["pid"] for name, lane in lanes(c).items() if lane.get("pid")}


def served(c: Container) -> bool:
    """A chat completion through the router answers 200 right now."""
    probe = chat_probe("Qwen3.5-9B")
    result = c.run("/usr/lib/qwend/venv/bin/python3", "-c", probe, check=False, timeout=60)
    return result.returncode == 0 and result.stdout.startswith("200")


def check_lanes_survive(c: Container, what: str, action: Callable[[], None]) -> None:
    """After ``action`` restarts qwend: a new main PID, the same lane PIDs, served quickly."""
    step(f"{what}: lanes keep their PIDs and serve again within seconds")
    wait_for("the active lanes before the restart", lambda: active_ready(c), 120)
    old_main, before = main_pid(c), running_lanes(c)
    started = time.monotonic()
    action()
    wait_for(
        f"qwend restarted after {what}",
        lambda: main_pid(c) not in (0, old_main) and is_active(c) == "active",
        90,
    )
    wait_for(f"traffic served after {what}", lambda: served(c), 60, interval=0.2)
    took = time.monotonic() - started
    wait_for(f"the active lanes after {what}", lambda: active_ready(c), 60)
    after = running_lanes(c)
    log(f"{what}: served again {took:.1f}s after it began; lanes {after}")
    if before != after:
        raise TestFailure(f"{what} changed the lane PIDs: {before} -> {after}")


def check_sigkill(c: Container) -> None:
    """SIGKILL of qwend's main process: systemd restarts it, the lanes are re-adopted."""
    check_lanes_survive(c, "kill -KILL qwend", lambda: c.run("kill", "-KILL", str(main_pid(c))))


def check_restart(c: Container) -> None:
    """``systemctl restart qwend`` re-adopts the running lanes."""
    check_lanes_survive(
        c, "systemctl restart qwend", lambda: c.run("systemctl", "restart", "qwend", timeout=180)
    )


def check_upgrade(c: Container, deb: Path) -> None:
    """Reinstalling (the upgrade path) keeps the edited config, the promoted lane, the lanes."""
    step("apt-get install --reinstall: config kept, service restarted, promotion persisted")
    wait_for("the active lanes before the upgrade", lambda: active_ready(c), 120)
    old, before = main_pid(c), running_lanes(c)
    c.run(
        "apt-get",
        "install",
        "--reinstall",
        "-y",
        "-o",
        "Dpkg::Options::=--force-confold",
        f"/debs/{deb.name}",
        timeout=300,
    )
    if "qwend-sim" not in c.out("cat", "/etc/qwend/qwend.toml"):
        raise TestFailure("the upgrade replaced the edited /etc/qwend/qwend.toml")
    wait_for("qwend restarted by the upgrade", lambda: main_pid(c) not in (0, old), 60)
    wait_for("the active lanes after the upgrade", lambda: active_ready(c), 120)
    if not lanes(c).get("recurrent_v2", {}).get("active"):
        raise TestFailure("the promotion of recurrent_v2 did not survive the restart")
    wait_for("traffic served after the upgrade", lambda: served(c), 60, interval=0.2)
    after = running_lanes(c)
    if before != after:
        raise TestFailure(f"the upgrade changed the lane PIDs: {before} -> {after}")


def check_watchdog(c: Container) -> None:
    """A stopped (hung) qwend is killed by the watchdog and restarted."""
    step("kill -STOP qwend: the watchdog restarts it, the lanes keep their PIDs")
    wait_for("the active lanes before the watchdog", lambda: active_ready(c), 120)
    old, before = main_pid(c), running_lanes(c)
    restarts = int(c.out("systemctl", "show", "-p", "NRestarts", "--value", "qwend"))
    c.run("kill", "-STOP", str(old))
    wait_for(
        "a restarted qwend",
        lambda: main_pid(c) not in (0, old) and is_active(c) == "active",
        90,
    )
    now = int(c.out("systemctl", "show", "-p", "NRestarts", "--value", "qwend"))
    if now <= restarts:
        raise TestFailure(f"NRestarts did not grow ({restarts} -> {now})")
    journal = c.out("journalctl", "-u", "qwend", "--no-pager", "-q")
    if "watchdog" not in journal.lower():
        raise TestFailure("the journal does not mention the watchdog")
    wait_for("the active lanes after the watchdog restart", lambda: active_ready(c), 120)
    after = running_lanes(c)
    if before != after:
        raise TestFailure(f"the watchdog restart changed the lane PIDs: {before} -> {after}")


def check_stop(c: Container) -> None:
    """``systemctl stop qwend`` leaves no lane process."""
    step("systemctl stop qwend leaves no lane process")
    c.run("systemctl", "stop", "qwend", timeout=180)
    left = [p for p in container_processes(c) if "qwend" in p[2]]
    if left:
        raise TestFailure(f"processes left after stop: {left}")


def check_purge(c: Container, running: bool) -> None:
    """``apt-get purge qwend`` leaves no process, file, directory, user or group behind."""
    step("apt-get purge qwend (lanes running) leaves nothing behind")
    if running:
        c.run("systemctl", "start", "qwend", timeout=180)
        wait_for("the active lanes before the purge", lambda: active_ready(c), 120)
    c.run("rm", "-f", TEST_DROPIN)
    c.run("apt-get", "purge", "-y", "qwend", timeout=180)
    procs = [p for p in container_processes(c) if "qwend" in p[2]]
    if procs:
        raise TestFailure(f"processes left after purge: {procs}")
    left = [p for p in PURGED_PATHS if c.run("test", "-e", p, check=False).returncode == 0]
    found = c.run(
        "find",
        "/",
        "-xdev",
        "(",
        "-path",
        "/proc",
        "-o",
        "-path",
        "/sys",
        "-o",
        "-path",
        "/debs",
        "-o",
        "-path",
        "/var/log/journal",
        # man-db's cache of formatted pages (systemd-analyze verify ran man): not the package's
        "-o",
        "-path",
        "/var/cache/man",
        ")",
        "-prune",
        "-o",
        "-name",
        "*qwend*",
        "-print",
        check=False,
    ).stdout.split()
    users = [db for db in ("passwd", "group") if c.run("getent", db, "qwend", check=False).stdout]
    if left or found or users:
        raise TestFailure(f"left after purge: paths {left + found}, getent {users}")


def run(deb: Path, cache: Path, stop_after_install: bool) -> None:
    """The whole test, in order; the daemon-dependent steps come last."""
    ensure_host_tools()
    root = ensure_rootfs(cache)
    (REPO / "build").mkdir(exist_ok=True)
    with booted(root, deb.parent.resolve()) as c:
        try:
            check_install(c, deb)
            if not stop_after_install:
                check_commands(c)
                check_default_config(c)
                configure_demo(c)
                check_sandbox(c)
                check_journal(c)
                check_promote(c)
                check_reload(c)
                check_sigkill(c)
                check_restart(c)
                check_upgrade(c, deb)
                check_watchdog(c)
                check_stop(c)
            check_purge(c, running=not stop_after_install)
        except TestFailure:
            journal = c.run("journalctl", "-u", "qwend", "--no-pager", "-n", "80", check=False)
            log("journal of qwend.service (last 80 lines):\n" + journal.stdout)
            raise


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--deb", type=Path, help="the package (default: the newest dist/qwend_*.deb)")
    ap.add_argument("--cache", type=Path, default=Path("/var/cache/qwend-ci"))
    ap.add_argument(
        "--install-only",
        action="store_true",
        help="install, verify and purge only (no daemon checks)",
    )
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the system test; exit 0 when every check passed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        log("needs root (debootstrap, systemd-nspawn, nsenter)")
        return 2
    deb = args.deb
    if deb is None:
        debs = sorted((REPO / "dist").glob("qwend_*.deb"), key=lambda p: p.stat().st_mtime)
        if not debs:
            log("no dist/qwend_*.deb: run `make deb` first")
            return 2
        deb = debs[-1]
    # SIGTERM (a CI time-out) unwinds through the teardown of the container.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        run(deb.resolve(), args.cache, args.install_only)
    except TestFailure as exc:
        log(f"FAILED: {exc}")
        return 1
    step("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
