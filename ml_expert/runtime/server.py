"""A dependency-free HTTP server for an ml-expert deployment package (what the Dockerfile runs).

Copied verbatim into every package as `server.py`; it needs only the standard library and
`inference.py` (numpy, onnxruntime). `ml-expert serve` is the full server (FastAPI, canary,
drift, metrics); this one is for a container that must run without ml-expert installed, and
it keeps the same contract:

    python server.py --host 0.0.0.0 --port 8080 [--version-label v3]
    POST /predict  one row object or {"rows": [...]} (1 to 1000 rows) -> 200
                   {"predictions": [...], "probabilities": [...], "version": ...}
                   422 {"detail": [{"loc": ["body", ...], "msg": ..., "type": ...}], "error": ...}
                   400 bad Content-Length, 411 none, 413 over 1 MB, 401 wrong X-API-Key
    GET  /health   -> {"status": "ok", "versions": [...]}

With $ML_EXPERT_API_KEY (or --api-key-file) set, /predict needs the X-API-Key header. Each
request has a deadline for its headers and one for its body; a thread answers each connection
and the listen backlog holds bursts of clients. No answer ever carries a NaN literal.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference import IntegrityError, ModelInference, SchemaError  # noqa: E402

MAX_BODY_BYTES = 1_000_000
MAX_ROWS = 1000
BACKLOG = 2048
# Each request is a thread: a /health thread waits for the GIL behind batch threads, 5 ms a turn
# by CPython's default; a shorter hand-over keeps short requests short while batches run.
SWITCH_INTERVAL_S = 0.0005
HEADER_TIMEOUT_S = float(os.environ.get("ML_EXPERT_HEADER_TIMEOUT_S", "10"))
BODY_TIMEOUT_S = float(os.environ.get("ML_EXPERT_BODY_TIMEOUT_S", "30"))


class Refused(Exception):
    """A request answered with a 4xx: status, detail list and a one-line message."""

    def __init__(
        self, status: int, message: str, loc: tuple[Any, ...] = ("body",), kind: str = "value_error"
    ):
        super().__init__(message)
        self.status = status
        self.detail = [{"type": kind, "loc": list(loc), "msg": message}]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON: send a number, or null for a missing value")


def parse_rows(raw: bytes) -> tuple[list[Any], bool]:
    """(rows, was a batch) from a body, or Refused(422) naming where it is wrong."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise Refused(422, "the JSON is nested too deeply", kind="json_invalid") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(422, f"not valid JSON: {exc}"[:300], kind="json_invalid") from None
    if isinstance(body, dict) and "rows" in body:
        rows = body["rows"]
        if not isinstance(rows, list):
            raise Refused(422, "rows must be a list of row objects", ("body", "rows"))
        if not 1 <= len(rows) <= MAX_ROWS:
            raise Refused(
                422, f"rows must hold 1 to {MAX_ROWS} row objects, got {len(rows)}", ("body", "rows")
            )
        return rows, True
    if not isinstance(body, dict):
        raise Refused(422, 'send one row object or {"rows": [...]}', kind="model_attributes_type")
    return [body], False


def make_handler(model: ModelInference, version: str, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
        server_version = "ml-expert-package"
        sys_version = ""

        # ------------------------------------------------------------ deadlines

        def _cut(self) -> None:
            """A read deadline passed: close the socket, which ends the blocked read."""
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def handle_one_request(self) -> None:
            self._timer = threading.Timer(HEADER_TIMEOUT_S, self._cut)
            self._timer.daemon = True
            self._timer.start()
            try:
                super().handle_one_request()
            except (ConnectionError, OSError):
                self.close_connection = True
            finally:
                self._timer.cancel()

        def _headers_read(self) -> None:
            self._timer.cancel()

        # ------------------------------------------------------------ answers

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload, allow_nan=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status < 300:
                self.send_header("X-Model-Version", version)
            self.end_headers()
            self.wfile.write(body)

        def _refuse(self, refused: Refused) -> None:
            self._send(refused.status, {"detail": refused.detail, "error": str(refused)})

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own errors (bad request line, headers too long) as JSON too."""
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(code, {"detail": message or "bad request", "error": message or "bad request"})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._headers_read()
            if self.path == "/health":
                self._send(200, {"status": "ok", "versions": [version], "task": model.task})
            elif self.path == "/predict":
                self._send(405, {"detail": "Method Not Allowed"})
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:  # noqa: N802
            self._headers_read()
            try:
                if self.path != "/predict":
                    self._drain_or_close()
                    self._send(404, {"detail": "Not Found"})
                    return
                if api_key is not None:
                    given = self.headers.get("X-API-Key", "")
                    if not hmac.compare_digest(given.encode(), api_key.encode()):
                        self.close_connection = True
                        self._send(401, {"detail": "missing or wrong X-API-Key header"})
                        return
                raw = self._read_body()
                rows, batch = parse_rows(raw)
                try:
                    labels, probabilities = model.predict_with_proba(rows)  # one model run
                except SchemaError as exc:
                    loc: tuple[Any, ...] = ("body",)
                    if batch and exc.row is not None:
                        loc += ("rows", exc.row)
                    if exc.field is not None:
                        loc += (exc.field,)
                    raise Refused(422, str(exc), loc) from None
                result: dict[str, Any] = {"predictions": labels}
                if probabilities is not None:
                    result["probabilities"] = probabilities.tolist()
                result["version"] = version
                self._send(200, result)
            except Refused as refused:
                self._refuse(refused)
            except (ConnectionError, TimeoutError):
                self.close_connection = True
            except Exception as exc:  # never drop a connection without an answer
                self.close_connection = True
                self._send(500, {"detail": "internal error", "error": type(exc).__name__})

        def _read_body(self) -> bytes:
            declared = self.headers.get("Content-Length")
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise Refused(411, "send the body with a Content-Length, not chunked", ("header",))
            if declared is None:
                self.close_connection = True
                raise Refused(
                    411, f"request body must declare Content-Length <= {MAX_BODY_BYTES} bytes", ("header",)
                )
            declared = declared.strip()
            if not declared.isdigit() or len(declared) > 12:
                self.close_connection = True
                raise Refused(400, f"Content-Length {declared[:20]!r} is not a byte count", ("header",))
            length = int(declared)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                raise Refused(
                    413, f"request body must declare Content-Length <= {MAX_BODY_BYTES} bytes", ("header",)
                )
            timer = threading.Timer(BODY_TIMEOUT_S, self._cut)
            timer.daemon = True
            timer.start()
            try:
                data = self.rfile.read(length)
            finally:
                timer.cancel()
            if len(data) < length:
                self.close_connection = True
                raise ConnectionError("the body ended early or timed out")
            return data

        def _drain_or_close(self) -> None:
            declared = (self.headers.get("Content-Length") or "").strip()
            if declared.isdigit() and int(declared) <= MAX_BODY_BYTES:
                self._read_body()
            else:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # quiet: no request bodies logged
            return

    return Handler


class Server(ThreadingHTTPServer):
    request_queue_size = BACKLOG  # the listen backlog: a burst of clients waits instead of being reset
    daemon_threads = True


def _api_key(file: str | None) -> str | None:
    if file:
        key = Path(file).read_text(encoding="utf-8").strip().splitlines()
        if not key or not key[0].strip():
            raise ValueError(f"{file}: no key in the file")
        return key[0].strip()
    return os.environ.get("ML_EXPERT_API_KEY") or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve this ml-expert deployment package over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--package", default=str(Path(__file__).resolve().parent))
    parser.add_argument(
        "--version-label",
        default=os.environ.get("ML_EXPERT_MODEL_VERSION"),
        help="version named in answers (default: from manifest.json)",
    )
    parser.add_argument("--api-key-file", help="require the X-API-Key in this file (or $ML_EXPERT_API_KEY)")
    args = parser.parse_args(argv)
    try:
        model = ModelInference(args.package)
        api_key = _api_key(args.api_key_file)
    except (IntegrityError, OSError, ValueError) as exc:
        print(f"refusing to serve: {exc}", file=sys.stderr)
        return 2
    version = args.version_label
    if not version:
        manifest = json.loads((Path(args.package) / "manifest.json").read_text(encoding="utf-8"))
        version = str(manifest.get("version") or f"run:{manifest.get('run_id') or 'unknown'}")
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    server = Server((args.host, args.port), make_handler(model, version, api_key))
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
