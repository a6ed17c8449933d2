"""``qwend-sim``: ``serve`` (a lane emulator), ``ray start`` (a Ray head or worker node)
and ``npu-smi`` (a fake npu-smi).

Data goes to stdout, diagnostics to stderr; ``main(argv, env)`` is injectable
for tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from qwend.logs import LogFormat, configure_logging
from qwend.sim import npusmi, state
from qwend.sim.dpranks import DpLayout, DpSettings
from qwend.sim.kvtransfer import ROLES, WITHOUT_KV
from qwend.sim.lane import FaultSettings, KvSettings, SimSettings
from qwend.sim.latency import VARIANTS, profile_for
from qwend.sim.raycluster import (
    DEFAULT_PORT,
    RayAddress,
    RayDriverSettings,
    RayLinkSettings,
    RayNodeSettings,
    driver_address,
    node_npus,
    parse_address,
)
from qwend.sim.raynode import run_node

USAGE_ERROR = 2

HANG_FILE = "npu-smi-hang"
"""While a file of this name is in the state directory, every ``npu-smi`` run hangs (fault
injection: a wedged driver's npu-smi never answers)."""

HANG_POLL_S = 0.1


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


def _add_fault_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fault injection (times in real seconds, not scaled)")
    g.add_argument("--fail-startup", action="store_true", help="exit after the model load")
    g.add_argument("--exit-code", type=int, default=1, help="status of injected exits")
    g.add_argument("--exit-after-requests", type=int, metavar="N")
    g.add_argument("--exit-after-seconds", type=_non_negative, metavar="S")
    g.add_argument("--hang-health", action="store_true", help="/health never answers")
    g.add_argument("--error-rate", type=_fraction, default=0.0, metavar="F")
    g.add_argument("--error-status", type=int, choices=(500, 503), default=500)
    g.add_argument("--stall-after-tokens", type=int, metavar="N", help="streams stop after N")
    g.add_argument("--leak-npu-memory-s", type=_non_negative, default=0.0, metavar="S")


def _add_kv_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prefill/decode disaggregation (vLLM's kv_transfer_params)")
    g.add_argument("--kv-role", choices=ROLES, default="both", help="default: whole requests")
    g.add_argument(
        "--kv-without",
        choices=WITHOUT_KV,
        default="recompute",
        help="decode lane, request without transfer parameters: prefill here, or 400",
    )
    g.add_argument("--kv-ttl-s", type=_positive, default=30.0, metavar="S")
    g.add_argument("--kv-capacity", type=_positive_int, default=256, metavar="N")
    g.add_argument(
        "--kv-advertise-host",
        default="",
        metavar="HOST",
        help="remote_host handed to decode lanes (default: --host; set it when that is 0.0.0.0)",
    )
    g.add_argument("--kv-engine-id", default="", help="remote_engine_id (default: random)")


def _add_dp_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-node data parallelism (vLLM's --data-parallel-* flags)")
    g.add_argument("--data-parallel-size", type=_positive_int, default=1, metavar="N")
    g.add_argument(
        "--data-parallel-size-local", type=_positive_int, metavar="N", help="default: the size"
    )
    g.add_argument("--data-parallel-start-rank", type=int, default=0, metavar="R")
    g.add_argument("--data-parallel-address", default="127.0.0.1", metavar="ADDR")
    g.add_argument("--data-parallel-rpc-port", type=int, default=13345, metavar="PORT")
    g.add_argument("--headless", action="store_true", help="a follower: no API, joins the leader")
    g.add_argument("--dp-heartbeat-s", type=_positive, default=0.5, metavar="S")
    g.add_argument("--dp-heartbeat-timeout-s", type=_positive, default=3.0, metavar="S")
    g.add_argument("--dp-join-timeout-s", type=_positive, default=120.0, metavar="S")


def dp_settings(args: argparse.Namespace) -> DpSettings | str:
    """The DP settings of parsed ``serve`` arguments, or why they cannot work."""
    size = args.data_parallel_size
    local = args.data_parallel_size_local
    if local is None:
        local = max(1, size - args.data_parallel_start_rank) if args.headless else size
    if args.headless and args.data_parallel_start_rank == 0:
        return "--headless needs --data-parallel-start-rank >= 1 (rank 0 is the leader's)"
    if not args.headless and args.data_parallel_start_rank != 0:
        return "a leader (no --headless) runs from rank 0; drop --data-parallel-start-rank"
    layout = DpLayout(size, local, args.data_parallel_start_rank)
    problem = layout.problem()
    if problem is not None:
        return problem
    return DpSettings(
        layout=layout,
        address=args.data_parallel_address,
        rpc_port=args.data_parallel_rpc_port,
        headless=args.headless,
        heartbeat_s=args.dp_heartbeat_s,
        heartbeat_timeout_s=args.dp_heartbeat_timeout_s,
        join_timeout_s=args.dp_join_timeout_s,
    )


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def _add_ray_link_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--ray-heartbeat-s", type=_positive, default=0.5, metavar="S")
    g.add_argument(
        "--ray-heartbeat-timeout-s",
        type=_positive,
        default=5.0,
        metavar="S",
        help="silence after which a link to the head (or a node's link) counts as lost",
    )


def _add_ray_driver_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("an engine on Ray (vLLM's --distributed-executor-backend ray)")
    g.add_argument(
        "--distributed-executor-backend",
        choices=("mp", "ray", "uni", "external_launcher"),
        help="ray: place the engine's workers on the Ray cluster at $RAY_ADDRESS",
    )
    g.add_argument("--tensor-parallel-size", "-tp", type=_positive_int, default=1, metavar="T")
    g.add_argument("--pipeline-parallel-size", "-pp", type=_positive_int, default=1, metavar="P")
    g.add_argument(
        "--ray-placement-timeout-s",
        type=_positive,
        default=1800.0,
        metavar="S",
        help="how long to wait for the cluster to have T x P NPUs (vLLM: 1800)",
    )
    _add_ray_link_flags(g)


def ray_driver_settings(
    args: argparse.Namespace, env: Mapping[str, str]
) -> RayDriverSettings | str | None:
    """The Ray settings of parsed ``serve`` arguments (None: not on Ray), or why they
    cannot work."""
    if args.distributed_executor_backend != "ray":
        return None
    if args.data_parallel_size > 1 or args.headless:
        return "the sim's Ray mode places tensor x pipeline parallel workers; drop the DP flags"
    address = driver_address(env)
    if isinstance(address, str):
        return address
    return RayDriverSettings(
        address=address,
        tensor_parallel=args.tensor_parallel_size,
        pipeline_parallel=args.pipeline_parallel_size,
        placement_timeout_s=args.ray_placement_timeout_s,
        link=RayLinkSettings(args.ray_heartbeat_s, args.ray_heartbeat_timeout_s),
    )


UNMODELLED_RAY_FLAGS = (
    "--dashboard-host",
    "--dashboard-port",
    "--include-dashboard",
    "--temp-dir",
    "--object-store-memory",
    "--object-manager-port",
    "--node-manager-port",
    "--min-worker-port",
    "--max-worker-port",
    "--ray-client-server-port",
)
"""``ray start`` flags common in real recipes that the sim accepts and ignores (no
dashboard, object store or worker port range here); the node logs them at start."""


class _Unmodelled(argparse.Action):
    """Collects the names of accepted-but-ignored flags in ``args.unmodelled``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        seen = list(getattr(namespace, self.dest, None) or [])
        namespace.unmodelled = [*seen, option_string or self.dest]


def _add_ray_parser(sub: Any) -> None:
    ray = sub.add_parser("ray", help="run a Ray head or worker node (like `ray start --block`)")
    ray_sub = ray.add_subparsers(dest="ray_command", required=True)
    start = ray_sub.add_parser("start", help="start a node and block until stopped")
    start.add_argument("--head", action="store_true", help="run the head (the GCS) here")
    start.add_argument("--block", action="store_true", help="required: stay in the foreground")
    start.add_argument("--address", metavar="HOST:PORT", help="a worker: the head's GCS")
    start.add_argument(
        "--port", type=int, metavar="PORT", help=f"the head's GCS port (default {DEFAULT_PORT})"
    )
    start.add_argument("--node-ip-address", default="127.0.0.1", metavar="IP")
    start.add_argument("--node-name", metavar="NAME", help="default: the node IP")
    start.add_argument("--num-gpus", type=_non_negative_int, metavar="N", help="NPUs given to Ray")
    start.add_argument("--num-cpus", type=_non_negative_int, metavar="N", help="accepted, unused")
    start.add_argument("--resources", metavar="JSON", help="e.g. '{\"NPU\": 8}'")
    start.add_argument("--disable-usage-stats", action="store_true", help="accepted (no-op)")
    for flag in UNMODELLED_RAY_FLAGS:
        start.add_argument(flag, action=_Unmodelled, dest="unmodelled", help=argparse.SUPPRESS)
    start.add_argument(
        "--verbose", action=_Unmodelled, nargs=0, dest="unmodelled", help=argparse.SUPPRESS
    )
    g = start.add_argument_group("sim tuning (real seconds)")
    _add_ray_link_flags(g)
    g.add_argument(
        "--ray-connect-timeout-s",
        type=_positive,
        default=60.0,
        metavar="S",
        help="a worker: how long it keeps trying to reach a head that is not up yet",
    )
    g.add_argument(
        "--leak-npu-memory-s",
        type=_non_negative,
        default=0.0,
        metavar="S",
        help="after exit, npu-smi keeps showing the engine workers' HBM this long",
    )
    g.add_argument("--log-format", choices=[f.value for f in LogFormat], default="auto")
    g.add_argument("--log-level", default="info")


def ray_node_settings(args: argparse.Namespace, env: Mapping[str, str]) -> RayNodeSettings | str:
    """The settings of parsed ``ray start`` arguments, or why they cannot work."""
    if not args.block:
        return (
            "ray start needs --block: without it Ray detaches its daemons and exits, and"
            " the sim does not daemonize (nothing would be left to supervise)"
        )
    if args.head and args.address:
        return "--head runs the GCS here; drop --address (that is for workers)"
    npus = node_npus(
        args.num_gpus,
        args.resources,
        state.parse_visible_devices(env.get("ASCEND_RT_VISIBLE_DEVICES")),
    )
    if isinstance(npus, str):
        return npus
    if args.head:
        port = DEFAULT_PORT if args.port is None else args.port
        if not 0 < port < 65536:
            return f"--port must be 1..65535, got {port}"
        address: RayAddress | str = RayAddress(args.node_ip_address, port)
        ignored: tuple[str, ...] = ()
    elif not args.address:
        return "a worker needs --address HEAD_IP:PORT (or --head to start the head)"
    else:
        address = parse_address(args.address)
        ignored = () if args.port is None else ("--port (a worker's GCS is the head's)",)
    if isinstance(address, str):
        return f"--{address}"
    return RayNodeSettings(
        head=args.head,
        address=address,
        node_ip=args.node_ip_address,
        name=args.node_name or args.node_ip_address,
        npus=npus,
        link=RayLinkSettings(args.ray_heartbeat_s, args.ray_heartbeat_timeout_s),
        connect_timeout_s=args.ray_connect_timeout_s,
        leak_npu_memory_s=args.leak_npu_memory_s,
        ignored=(*(args.unmodelled or ()), *ignored),
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``qwend-sim`` argument parser."""
    parser = argparse.ArgumentParser(prog="qwend-sim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run an emulated Qwen3.5 lane (OpenAI-compatible)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-model-name", default="qwen3.5-9b")
    serve.add_argument("--variant", choices=VARIANTS, default="baseline")
    serve.add_argument("--lane-name", help="name in logs and in npu-smi state (default: model)")
    serve.add_argument(
        "--startup-delay", type=_non_negative, help="model load seconds (default: per variant)"
    )
    serve.add_argument("--time-scale", type=_positive, default=1.0, help="divide all delays")
    serve.add_argument("--max-model-len", type=int, default=32_768)
    serve.add_argument("--max-num-seqs", type=int, default=32)
    serve.add_argument(
        "--api-key", default="", help="like vLLM: /v1 requests need Authorization: Bearer KEY"
    )
    serve.add_argument("--log-format", choices=[f.value for f in LogFormat], default="auto")
    serve.add_argument("--log-level", default="info")
    _add_kv_flags(serve)
    _add_dp_flags(serve)
    _add_ray_driver_flags(serve)
    _add_fault_flags(serve)
    _add_ray_parser(sub)
    smi = sub.add_parser("npu-smi", help="fake npu-smi showing the running sim lanes")
    smi.add_argument("smi_args", nargs=argparse.REMAINDER)
    return parser


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> SimSettings:
    """``SimSettings`` from parsed ``serve`` arguments and the environment (the DP
    arguments already checked by ``dp_settings``)."""
    dp = dp_settings(args)
    if isinstance(dp, str):
        raise ValueError(dp)
    ray = ray_driver_settings(args, env)
    if isinstance(ray, str):
        raise ValueError(ray)
    faults = FaultSettings(
        fail_startup=args.fail_startup,
        exit_code=args.exit_code,
        exit_after_requests=args.exit_after_requests,
        exit_after_seconds=args.exit_after_seconds,
        hang_health=args.hang_health,
        error_rate=args.error_rate,
        error_status=args.error_status,
        stall_after_tokens=args.stall_after_tokens,
        leak_npu_memory_s=args.leak_npu_memory_s,
    )
    startup = args.startup_delay
    return SimSettings(
        host=args.host,
        port=args.port,
        served_model_name=args.served_model_name,
        variant=args.variant,
        lane_name=args.lane_name or args.served_model_name,
        startup_delay=profile_for(args.variant).startup_s if startup is None else startup,
        time_scale=args.time_scale,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        visible_devices=env.get("ASCEND_RT_VISIBLE_DEVICES", ""),
        state_dir=state.state_dir(env),
        faults=faults,
        api_key=args.api_key,
        kv=KvSettings(
            role=args.kv_role,
            without_kv=args.kv_without,
            ttl_s=args.kv_ttl_s,
            capacity=args.kv_capacity,
            advertise_host=args.kv_advertise_host,
            engine_id=args.kv_engine_id,
        ),
        dp=dp,
        ray=ray,
    )


def npu_smi(argv: Sequence[str], env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """The fake ``npu-smi``: ``info``, ``info -m``, ``info -t usages -i N``."""
    args = list(argv)
    if not args or args[0] != "info":
        err.write(f"{npusmi.USAGE}\n")
        return USAGE_ERROR
    opts = args[1:]
    hang = state.state_dir(env) / HANG_FILE
    while hang.exists():
        time.sleep(HANG_POLL_S)
    records = state.read_records(state.state_dir(env))
    if not opts:
        out.write(npusmi.render_info(records))
        return 0
    if opts == ["-m"]:
        out.write(npusmi.render_mapping())
        return 0
    flags = _pairs(opts)
    if flags is not None and flags.get("-t") == "usages":
        return _usages(flags, records, out)
    err.write(f"qwend-sim npu-smi: unsupported arguments {' '.join(opts)!r}\n{npusmi.USAGE}\n")
    return USAGE_ERROR


def _pairs(opts: Sequence[str]) -> dict[str, str] | None:
    """``-t usages -i 3 -c 0`` as a dict, or None if not flag/value pairs."""
    if len(opts) % 2 or any(o not in ("-t", "-i", "-c") for o in opts[::2]):
        return None
    return dict(zip(opts[::2], opts[1::2], strict=True))


def _usages(flags: Mapping[str, str], records: Sequence[state.LaneRecord], out: TextIO) -> int:
    card = flags.get("-i")
    if card is None:
        out.write(npusmi.missing_card_text())
        return 1
    if not card.isdigit() or not npusmi.valid_npu(int(card)):
        out.write(npusmi.invalid_card_text())
        return 1
    if flags.get("-c", "0") != "0":
        out.write(f"Invalid chip id.\nError parameter of -c\n{npusmi.USAGE}\n")
        return 1
    out.write(npusmi.render_usages(records, int(card)))
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``qwend-sim`` console script."""
    environ = os.environ if env is None else env
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.command == "npu-smi":
        return npu_smi(args.smi_args, environ, sys.stdout, sys.stderr)
    if args.command == "ray":
        return ray_start(parser, args, environ)
    dp = dp_settings(args)
    if isinstance(dp, str):
        parser.error(dp)
    ray = ray_driver_settings(args, environ)
    if isinstance(ray, str):
        parser.error(ray)
    configure_logging(LogFormat(args.log_format), args.log_level, env=environ)
    from qwend.sim.serve import serve  # aiohttp only for the server

    return asyncio.run(serve(settings_from_args(args, environ)))


def ray_start(
    parser: argparse.ArgumentParser, args: argparse.Namespace, env: Mapping[str, str]
) -> int:
    """``qwend-sim ray start``: usage errors exit 2, then the node runs in the foreground."""
    settings = ray_node_settings(args, env)
    if isinstance(settings, str):
        parser.error(f"ray start: {settings}")
    configure_logging(LogFormat(args.log_format), args.log_level, env=env)
    return asyncio.run(run_node(settings, state.state_dir(env)))
