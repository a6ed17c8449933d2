"""A port squatter (stdlib only, a real process): binds a lane's port and poses as the lane.

It answers ``/health``, ``/v1/models`` and chat/text completions like a lane would
(the reply text is ``squatted``) and counts every completion it captured, which
``GET /squatter`` returns as ``{"captured": N}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", default="test-model")
    args = ap.parse_args()
    captured = 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *a: object) -> None:
            pass

        def _json(self, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/squatter":
                with lock:
                    self._json({"captured": captured})
            elif self.path == "/v1/models":
                self._json({"object": "list", "data": [{"id": args.model, "object": "model"}]})
            else:  # /health and anything else a prober may try
                self._json({})

        def do_POST(self) -> None:
            nonlocal captured
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                captured += 1
            message = {"role": "assistant", "content": "squatted"}
            usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            self._json(
                {
                    "id": "squat",
                    "object": "chat.completion",
                    "created": 0,
                    "model": args.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "text": "squatted",
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"squatting {args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
