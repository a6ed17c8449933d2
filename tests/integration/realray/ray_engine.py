"""A small engine on a real Ray cluster, run the way vLLM's Ray executor runs one.

Run by the Ray virtualenv's python (``provision.sh``), as the command of a lane with
``runs_on`` the Ray lane group::

    python ray_engine.py --address HEAD_IP:PORT --node-ip-address OWN_IP \
        --port PORT --served-model-name NAME [--workers 2] [--wait-s 60]

It is a Ray driver (``ray.init(address=...)``): it waits until the cluster has
``--workers`` alive nodes, reserves one CPU on each with a STRICT_SPREAD placement group
(as vLLM reserves one bundle per rank), places one worker actor per bundle, and only then
serves HTTP: ``/health`` (200 while every actor answered its last ping), ``/v1/models`` and
``/v1/chat/completions`` (plain and streamed), each answer made of every actor's reply. A
monitor pings the actors every half second; when one cannot answer (its node died, so Ray
lost the actor) the engine exits 1, as vLLM's engine does when a Ray worker's node dies.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

PING_EVERY_S = 0.5
PING_TIMEOUT_S = 5.0
HEALTHY_WITHIN_S = 3.0
"""/health answers 200 while the last good ping of every actor is this recent."""


@ray.remote(num_cpus=1)
class Worker:
    """One rank: answers with where it runs (the node Ray placed it on)."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.ip = ray.util.get_node_ip_address()
        self.node_id = ray.get_runtime_context().get_node_id()

    def info(self) -> dict[str, Any]:
        return {"rank": self.rank, "ip": self.ip, "node_id": self.node_id, "pid": os.getpid()}

    def ping(self) -> int:
        return self.rank

    def generate(self, prompt_chars: int, max_tokens: int) -> list[str]:
        words = [f"rank{self.rank}@{self.ip}"] * max(1, max_tokens // 2)
        return words[: max(1, max_tokens)]


def say(message: str) -> None:
    print(f"ray-engine: {message}", flush=True)


class Engine:
    """The actors, their last good ping, and answers made by them."""

    def __init__(self, actors: list[Any], model: str) -> None:
        self.actors = actors
        self.model = model
        self.last_ok = time.monotonic()

    def healthy(self) -> bool:
        return time.monotonic() - self.last_ok < HEALTHY_WITHIN_S

    def monitor(self) -> None:
        """Ping every actor; exit 1 the moment one is lost (its node died)."""
        while True:
            try:
                ray.get([a.ping.remote() for a in self.actors], timeout=PING_TIMEOUT_S)
            except Exception as exc:  # RayActorError, GetTimeoutError, a lost GCS ...
                say(f"a worker actor is lost ({type(exc).__name__}: {exc}); exiting")
                os._exit(1)
            self.last_ok = time.monotonic()
            time.sleep(PING_EVERY_S)

    def words(self, prompt_chars: int, max_tokens: int) -> list[str]:
        parts = ray.get(
            [a.generate.remote(prompt_chars, max_tokens) for a in self.actors],
            timeout=PING_TIMEOUT_S,
        )
        merged = [w for ws in zip(*parts, strict=False) for w in ws]
        return merged[:max_tokens]


def handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per probe would fill the lane log

        def send_json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status: int, message: str) -> None:
            kind = "invalid_request_error" if status < 500 else "server_error"
            self.send_json(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self) -> None:
            if self.path == "/health":
                if engine.healthy():
                    self.send_json(200, {"status": "ok", "workers": len(engine.actors)})
                else:
                    self.error(503, "a worker actor did not answer")
            elif self.path == "/v1/models":
                model = {"id": engine.model, "object": "model", "owned_by": "ray-engine"}
                self.send_json(200, {"object": "list", "data": [model]})
            else:
                self.error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            if self.path != "/v1/chat/completions":
                self.error(404, f"no route {self.path}")
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length))
                messages = request["messages"]
                prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
                max_tokens = int(request.get("max_tokens") or 16)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                self.error(400, f"bad request: {exc}")
                return
            try:
                words = engine.words(prompt_chars, max(1, max_tokens))
            except Exception as exc:
                self.error(503, f"workers did not answer: {type(exc).__name__}")
                return
            usage = {
                "prompt_tokens": max(1, prompt_chars // 4),
                "completion_tokens": len(words),
                "total_tokens": max(1, prompt_chars // 4) + len(words),
            }
            head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time())}
            head["model"] = request.get("model") or engine.model
            if request.get("stream"):
                self.stream(head, words, usage, request)
                return
            message = {"role": "assistant", "content": " ".join(words)}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
            body = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            self.send_json(200, body)

        def stream(
            self,
            head: dict[str, Any],
            words: list[str],
            usage: dict[str, int],
            request: dict[str, Any],
        ) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            base = {**head, "object": "chat.completion.chunk"}
            for i, word in enumerate(words):
                delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
                self.event({**base, "choices": [{"index": 0, "delta": delta}]})
            done = {"index": 0, "delta": {}, "finish_reason": "length"}
            self.event({**base, "choices": [done]})
            if (request.get("stream_options") or {}).get("include_usage"):
                self.event({**base, "choices": [], "usage": usage})
            self.chunk(b"data: [DONE]\n\n")
            self.chunk(b"")

        def event(self, body: dict[str, Any]) -> None:
            self.chunk(b"data: " + json.dumps(body).encode() + b"\n\n")

        def chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def head_listening(address: str) -> bool:
    """Whether the head's GCS accepts connections (``ray.init`` to a head not up yet waits
    a minute and more before it fails: the engine may be started the moment the head's
    process is, before its GCS listens)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="the Ray head's GCS, HOST:PORT")
    parser.add_argument("--node-ip-address", required=True, help="this node's Ray address")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--workers", type=int, default=2, help="nodes, one actor on each")
    parser.add_argument("--wait-s", type=float, default=60.0, help="for nodes and placement")
    args = parser.parse_args()

    started = time.monotonic()
    deadline = started + args.wait_s
    while not head_listening(args.address):
        if time.monotonic() > deadline:
            say(f"no Ray head listening at {args.address} after {args.wait_s:g}s")
            return 1
        time.sleep(0.2)
    ray.init(address=args.address, _node_ip_address=args.node_ip_address, log_to_driver=False)
    say(f"connected to {args.address} in {time.monotonic() - started:.2f}s")
    while len(nodes := alive_nodes()) < args.workers:
        if time.monotonic() > deadline:
            say(f"only {len(nodes)} of {args.workers} Ray nodes alive after {args.wait_s:g}s")
            return 1
        time.sleep(0.2)
    group = placement_group([{"CPU": 1}] * args.workers, strategy="STRICT_SPREAD")
    try:
        ray.get(group.ready(), timeout=max(1.0, deadline - time.monotonic()))
    except ray.exceptions.GetTimeoutError:
        say(f"placement group of {args.workers} nodes not ready after {args.wait_s:g}s")
        return 1
    actors = [
        Worker.options(  # type: ignore[attr-defined]
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=rank
            )
        ).remote(rank)
        for rank in range(args.workers)
    ]
    infos = ray.get([a.info.remote() for a in actors], timeout=args.wait_s)
    for info in infos:
        where = f"node {info['ip']} ({info['node_id'][:8]})"
        say(f"worker rank {info['rank']} on {where}, pid {info['pid']}")
    if len({i["node_id"] for i in infos}) != args.workers:
        say("workers are not on distinct nodes")
        return 1
    engine = Engine(actors, args.served_model_name)
    server = ThreadingHTTPServer((args.host, args.port), handler(engine))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    say(f"serving on {args.host}:{args.port}, {time.monotonic() - started:.2f}s after start")
    engine.monitor()
    return 0


if __name__ == "__main__":
    sys.exit(main())
