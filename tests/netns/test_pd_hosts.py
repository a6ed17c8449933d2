"""A 1P2D prefill/decode role across three hosts, the prefill host's qwend as the proxy.

Three network namespaces on a bridge, as the seed's Mooncake layout: ``node0`` runs qwend
with the prefill lane (a local sim lane, ``kv_role = "prefill"``, handing out its own
address for the KV pull) and both decode lanes as remote lanes; ``node1`` and ``node2``
each run qwend supervising one decode sim lane that refuses a request without transfer
parameters. Streaming load runs inside ``node0`` throughout. Every request goes prefill
then decode across the bridge; pulling node2's cable takes d2 out of rotation, the load
moves to d1 with no request failed before its first byte, and plugging it back brings d2
back. Stopping every qwend leaves no lane process and no namespace behind. Root only.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from tests.support.daemonproc import run_daemon, write_config, write_lane
from tests.support.netload import assert_none_failed_early, start_load, stop_load
from tests.support.netns import (
    HEALTH,
    OUT_WITHIN_S,
    SLACK_S,
    Cluster,
    cluster_hosts,
    namespaces,
    require_netns,
)
from tests.support.simlane import DEFAULT_MODEL, sim_executable

pytestmark = pytest.mark.netns

MODEL = "Qwen3.5-397B-A17B"
LANE_PORT = 18310
ROUTER_PORT = 18389
DECODE_HOSTS = ("node1", "node2")


def sim(kv: list[str]) -> list[str]:
    return [
        sim_executable(), "serve", "--host", "0.0.0.0", "--port", "{port}",
        "--served-model-name", DEFAULT_MODEL, "--variant", "v3", "--lane-name", "{name}",
        "--time-scale", "50", *kv,
    ]  # fmt: skip


def decode_host_config(base: Path, host: str) -> Path:
    """qwend.toml of a decode host: one local decode sim lane on every address."""
    cfg = write_config(base / host, [])
    kv = ["--kv-role", "decode", "--kv-without", "refuse"]
    write_lane(
        cfg.parent / "lanes.d",
        f"{host}-decode",
        {"role": "decode", "model": MODEL, "served_model": DEFAULT_MODEL, "npus": [0],
         "port": LANE_PORT, "command": sim(kv), "kv_role": "decode",
         "health": {"interval_s": 1.0}},
    )  # fmt: skip
    return cfg


def prefill_host_config(base: Path, net: Cluster) -> Path:
    """qwend.toml of node0: the prefill lane here, the decode lanes as remote lanes."""
    cfg = write_config(base / "node0", [], router_port=ROUTER_PORT)
    doc = tomllib.loads(cfg.read_text())
    # A request written to a pooled connection whose cable is out gets no answer: it is
    # retried elsewhere after this, not after the default's ten minutes.
    doc["router"]["first_byte_timeout_s"] = 5.0
    cfg.write_bytes(tomli_w.dumps(doc).encode())
    kv = ["--kv-role", "prefill", "--kv-advertise-host", net.addr["node0"]]
    write_lane(
        cfg.parent / "lanes.d",
        "p0",
        {"role": "prefill", "model": MODEL, "served_model": DEFAULT_MODEL, "npus": [0],
         "port": LANE_PORT, "command": sim(kv), "kv_role": "prefill",
         "health": {"interval_s": 1.0}},
    )  # fmt: skip
    for index, host in enumerate(DECODE_HOSTS, start=1):
        write_lane(
            cfg.parent / "lanes.d",
            f"d{index}",
            {"role": f"decode-{index}", "model": MODEL, "served_model": DEFAULT_MODEL,
             "url": f"http://{net.addr[host]}:{LANE_PORT}", "connect_timeout_s": 0.5,
             "kv_role": "decode", "health": HEALTH,
             "restart": {"backoff_min_s": 0.1, "backoff_max_s": 0.5}},
        )  # fmt: skip
    return cfg


async def test_1p2d_across_three_hosts_under_load_survives_a_decode_host_cut(
    tmp_path: Path,
) -> None:
    require_netns()
    with cluster_hosts(["node0", *DECODE_HOSTS]) as net:
        made = {*net.namespace.values(), net.bridge}
        load: subprocess.Popen[bytes] | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                decoders = {
                    host: await stack.enter_async_context(
                        run_daemon(decode_host_config(tmp_path, host), prefix=net.exec_in(host))
                    )
                    for host in DECODE_HOSTS
                }
                for host, daemon in decoders.items():
                    await daemon.wait_lanes({f"{host}-decode": "ready"}, timeout=60)
                proxy = await stack.enter_async_context(
                    run_daemon(prefill_host_config(tmp_path, net), prefix=net.exec_in("node0"))
                )
                await proxy.wait_lanes({"p0": "ready", "d1": "ready", "d2": "ready"}, timeout=60)
                infos = await proxy.lanes()
                assert [infos[n].kv_role for n in ("p0", "d1", "d2")] == [
                    "prefill", "decode", "decode"
                ]  # fmt: skip
                stop = tmp_path / "stop-load"
                load = start_load(
                    net.exec_in("node0"), f"http://127.0.0.1:{ROUTER_PORT}", MODEL, stop, workers=4
                )
                d2_before = await proxy.served("d2")
                await proxy.served("d1")
                net.link("node2", up=False)
                cut = time.monotonic()
                _, out = await proxy.wait_state(
                    "d2", {"unhealthy", "backoff", "starting"}, OUT_WITHIN_S + SLACK_S
                )
                d1_out = await proxy.completed("d1")
                d1_during = await proxy.served("d1", d1_out + 20)
                net.link("node2", up=True)
                back, _ = await proxy.wait_state("d2", {"ready"}, 30)
                d2_after = await proxy.served("d2", await proxy.completed("d2"))
                records = stop_load(load, stop)
                stats = (await proxy.lanes())["p0"].stats
                assert stats is not None and stats.requests > 0
            for host, daemon in {**decoders, "node0": proxy}.items():
                assert daemon.leftovers() == [], f"qwend on {host} left lane processes behind"
        finally:
            if load is not None and load.poll() is None:
                load.kill()
                load.wait(timeout=15)
    assert not made & set(namespaces()), "namespaces left behind"

    assert_none_failed_early(records)
    assert len(records) > 50 and all(r["lane"].startswith("p0>d") for r in records)
    assert out - cut <= OUT_WITHIN_S + SLACK_S
    assert d2_before > 0 and d2_after > d2_before and d1_during > d1_out + 20
    during = [r for r in records if out < r["start"] < back]
    assert during and all(r["lane"] == "p0>d1" for r in during), "the cut host was still routed"
