"""A dependency-free HTTP server for an ml-expert deployment package (what the Dockerfile runs).

Copied verbatim into every package as `server.py`; it needs only the standard library and
`inference.py` (numpy, onnxruntime). `ml-expert serve` is the full server (FastAPI, canary,
drift, metrics); this one is for a container that must run without ml-expert installed.

    python server.py --host 0.0.0.0 --port 8080
    POST /predict  {"rows": [{...}, ...]} or one row object -> {"predictions": [...]}
    GET  /health   -> {"status": "ok"}
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference import IntegrityError, ModelInference, SchemaError  # noqa: E402

MAX_BODY_BYTES = 1_000_000


def make_handler(model: ModelInference) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/health":
                self._send(200, {"status": "ok", "task": model.task})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/predict":
                self._send(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._send(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                rows = body["rows"] if isinstance(body, dict) and "rows" in body else body
                result: dict = {"predictions": model.predict(rows)}
                if model.task == "classification":
                    result["probabilities"] = model.predict_proba(rows).tolist()
            except (SchemaError, ValueError, KeyError, TypeError) as exc:
                self._send(422, {"error": str(exc)})
                return
            self._send(200, result)

        def log_message(self, format: str, *args: object) -> None:  # quiet: no request bodies logged
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve this ml-expert deployment package over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--package", default=str(Path(__file__).resolve().parent))
    args = parser.parse_args(argv)
    try:
        model = ModelInference(args.package)
    except IntegrityError as exc:
        print(f"refusing to serve: {exc}", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer((args.host, args.port), make_handler(model))
    print(f"serving on http://{args.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
