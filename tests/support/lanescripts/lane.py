"""A tiny OpenAI-ish lane for supervisor tests (stdlib only, runs as a real process).

Faults: --crash-on-start, --ignore-term, --hang-health-file PATH (while PATH exists,
/health never answers), --spawn-child (a grandchild in the same process group; with
--child-own-group in a process group of its own, as Ray's raylet puts its workers).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", default="test-model")
    ap.add_argument("--startup-delay", type=float, default=0.0)
    ap.add_argument("--crash-on-start", action="store_true")
    ap.add_argument("--ignore-term", action="store_true")
    ap.add_argument("--hang-health-file", default="")
    ap.add_argument("--spawn-child", action="store_true")
    ap.add_argument("--child-own-group", action="store_true")
    ap.add_argument(
        "--child-term-file",
        default="",
        help="the grandchild writes it on SIGTERM (and FILE.armed once its handler is set)",
    )
    args = ap.parse_args()

    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(
        f"lane starting pid={os.getpid()} devices={os.environ.get('ASCEND_RT_VISIBLE_DEVICES')}",
        flush=True,
    )
    child_pid = None
    if args.spawn_child:
        on_term = (
            f"lambda *_: (open({args.child_term_file!r}, 'w').close(), sys.exit(0))"
            if args.child_term_file
            else "signal.SIG_IGN"
        )
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import signal,sys,time\n"
                f"signal.signal(signal.SIGTERM, {on_term})\n"
                + (
                    f"open({args.child_term_file + '.armed'!r}, 'w').close()\n"
                    if args.child_term_file
                    else ""
                )
                + "while True: time.sleep(60)",
            ],
            process_group=0 if args.child_own_group else None,
        )
        child_pid = child.pid
        print(f"grandchild pid={child_pid}", flush=True)
    time.sleep(args.startup_delay)
    if args.crash_on_start:
        print("crashing on purpose", file=sys.stderr, flush=True)
        return 3

    hang_file = Path(args.hang_health_file) if args.hang_health_file else None

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *a: object) -> None:
            print("http " + format % a, flush=True)

        def _json(self, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                while hang_file is not None and hang_file.exists():
                    time.sleep(0.1)
                self._json({})
            elif self.path == "/v1/models":
                self._json({"object": "list", "data": [{"id": args.model, "object": "model"}]})
            elif self.path == "/env":
                self._json(
                    {
                        "pid": os.getpid(),
                        "child_pid": child_pid,
                        "ASCEND_RT_VISIBLE_DEVICES": os.environ.get("ASCEND_RT_VISIBLE_DEVICES"),
                        "env": dict(os.environ),
                    }
                )
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(length)
            if self.path in ("/v1/completions", "/v1/chat/completions"):
                self._json(
                    {
                        "id": "x",
                        "object": "text_completion",
                        "model": args.model,
                        "choices": [{"index": 0, "text": "ok", "finish_reason": "length"}],
                    }
                )
            else:
                self.send_error(404)

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"listening on {args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
