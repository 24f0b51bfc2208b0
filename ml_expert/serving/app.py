"""The HTTP app: validated predictions, health, metadata, Prometheus metrics, drift, a canary.

Each served version is a package loaded through its own verified `inference.py` contract
(`ModelInference`: nothing is loaded unless its SHA-256 matches manifest.json). The request
body is checked by a pydantic model built from schema.json, so a bad field is a 422 that
names it. Input statistics for drift are kept in memory, bounded, and never logged.
"""

import json
import random
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ml_expert.runtime.inference import ModelInference, SchemaError, formatted_number
from ml_expert.tools.deployment.manifest import PackageManifest

MAX_BODY_BYTES = 1_000_000
MAX_ROWS = 1000
DRIFT_WINDOW = 5000
"""Most recent input values kept per column for /drift (memory stays bounded)."""
LATENCY_BUCKETS_MS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000)
UNMATCHED = "<unmatched>"
"""The path label of every request that matched no route: labels stay a bounded set."""


def label(value: object) -> str:
    """A Prometheus label value, escaped (backslash, quote, newline) so no request can add a line."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON: send a number, or null for a missing value")


def parse_body(raw: bytes) -> Any:
    """Strict JSON: no NaN/Infinity literals, no nesting deep enough to exhaust the stack."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


@dataclass
class Served:
    version: str
    path: Path
    model: ModelInference
    manifest: PackageManifest
    stats: dict[str, Any] | None


def load_served(path: Path, version: str) -> Served:
    model = ModelInference(path)  # verifies every file against manifest.json first
    manifest = PackageManifest.read(path)
    stats = None
    if "training_stats.json" in manifest.files:
        # hashed by ModelInference's check above, which read every listed file
        stats = json.loads((path / "training_stats.json").read_text())
    return Served(version, path, model, manifest, stats)


def row_model(schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model with one field per raw input column; missing values may be null.

    A date column expands into several derived schema columns that share one raw name: it is one
    text field here.
    """
    fields: dict[str, Any] = {}
    seen: set[str] = set()
    for col in schema["columns"]:
        if col["name"] in seen:
            continue
        seen.add(col["name"])
        if col.get("derive") in ("word", "token"):
            kind, what = str | None, "free text"
        elif col.get("derive") in ("part", "count"):
            kind, what = str | bool | int | float | None, "composite code"
        elif col.get("derive"):
            kind, what = str | None, "date/time text"
        elif col["kind"] == "numeric" and col.get("number_format"):
            # "$1,234.56" as sent; the runtime reads it in the column's format (or names the row)
            kind = Annotated[float, Field(allow_inf_nan=False)] | str | None
            what = f"numeric (numbers may be written like {col['number_format'].get('example', '')!r})"
        elif col["kind"] == "numeric":
            kind, what = Annotated[float, Field(allow_inf_nan=False)] | None, "numeric"
        else:
            # bool before int: JSON true stays True ("True", as training spelt a TRUE/false column),
            # not 1 (a category training never saw)
            kind, what = str | bool | int | float | None, "categorical"
        fields[col["key"]] = (kind, Field(alias=col["name"], description=f"{what} column {col['name']!r}"))
    return create_model("Row", __config__=ConfigDict(extra="ignore", populate_by_name=False), **fields)


@dataclass
class Metrics:
    """Counters and a latency histogram, written in the Prometheus text format."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[tuple[str, str, int], int] = field(default_factory=dict)
    buckets: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def observe(self, path: str, version: str, status: int, ms: float, rows: int = 0) -> None:
        with self.lock:
            key = (path, version, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            if path == "/predict":
                b = self.buckets.setdefault(version, [0] * len(LATENCY_BUCKETS_MS))
                for i, edge in enumerate(LATENCY_BUCKETS_MS):
                    if ms <= edge:
                        b[i] += 1
                self.sums[version] = self.sums.get(version, 0.0) + ms / 1000
                self.counts[version] = self.counts.get(version, 0) + 1
                self.rows[version] = self.rows.get(version, 0) + rows

    def text(self) -> str:
        out = [
            "# HELP mlx_requests_total HTTP requests by path, model version and status.",
            "# TYPE mlx_requests_total counter",
        ]
        with self.lock:
            for (path, version, status), n in sorted(self.requests.items()):
                labels = f'path="{label(path)}",version="{label(version)}",status="{status}"'
                out.append(f"mlx_requests_total{{{labels}}} {n}")
            out += [
                "# HELP mlx_errors_total Requests answered with a 4xx or 5xx status.",
                "# TYPE mlx_errors_total counter",
            ]
            errors: dict[str, int] = {}
            for (_, version, status), n in self.requests.items():
                if status >= 400:
                    errors[version] = errors.get(version, 0) + n
            for version, n in sorted(errors.items()):
                out.append(f'mlx_errors_total{{version="{label(version)}"}} {n}')
            out += [
                "# HELP mlx_predict_rows_total Rows predicted.",
                "# TYPE mlx_predict_rows_total counter",
                *[
                    f'mlx_predict_rows_total{{version="{label(v)}"}} {n}'
                    for v, n in sorted(self.rows.items())
                ],
                "# HELP mlx_predict_latency_seconds Time to answer POST /predict inside the app.",
                "# TYPE mlx_predict_latency_seconds histogram",
            ]
            for raw_version, counts in sorted(self.buckets.items()):
                version = label(raw_version)
                for edge, n in zip(LATENCY_BUCKETS_MS, counts, strict=True):
                    out.append(
                        f'mlx_predict_latency_seconds_bucket{{version="{version}",le="{edge / 1000:g}"}} {n}'
                    )
                total = self.counts[raw_version]
                out.append(f'mlx_predict_latency_seconds_bucket{{version="{version}",le="+Inf"}} {total}')
                out.append(
                    f'mlx_predict_latency_seconds_sum{{version="{version}"}} {self.sums[raw_version]:.6f}'
                )
                out.append(f'mlx_predict_latency_seconds_count{{version="{version}"}} {total}')
        return "\n".join(out) + "\n"


def _as_numbers(records: list[dict[str, Any]], model: ModelInference) -> list[dict[str, Any]]:
    """Rows with numbers written as text ("$1,234.56") read as the model read them, for /drift."""
    formats = {
        c["name"]: c["number_format"] for c in model.columns if c.get("number_format") and not c.get("derive")
    }
    if not formats:
        return records
    out = []
    for row in records:
        row = dict(row)
        for name, fmt in formats.items():
            if isinstance(row.get(name), str):
                number = formatted_number(row[name], fmt)
                row[name] = None if number is None or number != number else number
        out.append(row)
    return out


class DriftWindow:
    """The most recent DRIFT_WINDOW input values per column, per served version."""

    def __init__(self, columns: list[str]) -> None:
        self.lock = threading.Lock()
        self.values = {c: deque(maxlen=DRIFT_WINDOW) for c in columns}

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            for row in rows:
                for name, window in self.values.items():
                    window.append(row.get(name))

    def snapshot(self) -> dict[str, list[Any]]:
        with self.lock:
            return {name: list(window) for name, window in self.values.items()}


def create_app(
    primary: Served,
    canary: Served | None = None,
    canary_fraction: float = 0.0,
    api_key: str | None = None,
    seed: int | None = None,
    open_metrics: bool = False,
) -> "LimitAndCount":
    """The app. With `api_key`, everything but /health needs the X-API-Key header, /metrics,
    /docs and /openapi.json included (`open_metrics` leaves /metrics open for a scraper)."""
    if canary is not None and canary.model.schema["columns"] != primary.model.schema["columns"]:
        raise ValueError(f"canary {canary.version} takes different inputs than {primary.version}")
    app = FastAPI(
        title=f"ml-expert model {primary.version}",
        version=primary.version,
        description=f"{primary.manifest.model}: {primary.model.task} of {primary.model.schema['target']}",
    )
    served = {s.version: s for s in (primary, canary) if s is not None}
    metrics = Metrics()
    windows = {v: DriftWindow([c["name"] for c in s.model.columns]) for v, s in served.items()}
    chooser = random.Random(seed)
    Row = row_model(primary.model.schema)  # noqa: N806 - a class
    Batch = create_model(  # noqa: N806
        "Batch", rows=(list[Row], Field(min_length=1, max_length=MAX_ROWS, description="rows to predict"))
    )

    def check_key(request: Request) -> None:
        if api_key is not None:
            given = request.headers.get("x-api-key", "")
            if not secrets.compare_digest(given.encode(), api_key.encode()):
                raise HTTPException(status_code=401, detail="missing or wrong X-API-Key header")

    @app.get("/health")
    async def health() -> dict[str, Any]:  # on the event loop: never queued behind predictions
        return {"status": "ok", "versions": sorted(served)}

    @app.get("/metadata", dependencies=[Depends(check_key)])
    def metadata() -> dict[str, Any]:
        return {
            "version": primary.version,
            "canary": {"version": canary.version, "fraction": canary_fraction} if canary else None,
            "models": {
                v: {
                    "model": s.manifest.model,
                    "run_id": s.manifest.run_id,
                    "created": s.manifest.created,
                    "metrics": s.manifest.metrics,
                    "latency": s.manifest.latency,
                }
                for v, s in served.items()
            },
            "schema": primary.model.schema,
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/drift", dependencies=[Depends(check_key)])
    def drift() -> dict[str, Any]:
        from ml_expert.tools.validation.drift import compare

        out: dict[str, Any] = {}
        for version, s in served.items():
            snapshot = windows[version].snapshot()
            n = len(next(iter(snapshot.values()), []))
            if s.stats is None:
                out[version] = {"rows": n, "note": "package has no training statistics"}
            elif n == 0:
                out[version] = {"rows": 0, "note": "no inputs seen yet"}
            else:
                out[version] = {"rows": n, **compare(s.stats, snapshot)}
        return out

    row_schema = Row.model_json_schema()
    body_schema = {
        "anyOf": [
            row_schema,
            {
                "type": "object",
                "required": ["rows"],
                "properties": {"rows": {"type": "array", "items": row_schema, "maxItems": MAX_ROWS}},
            },
        ]
    }

    @app.post(
        "/predict",
        dependencies=[Depends(check_key)],
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}
        },
    )
    async def predict(request: Request) -> JSONResponse:
        """One row object, or {"rows": [...]}; each row is checked against schema.json.

        Parsing, validation, the model, the drift window and rendering the answer run in a worker
        thread: a 1,000-row batch must not hold the event loop that answers /health and every
        other request."""
        raw = await request.body()
        use = canary if canary is not None and chooser.random() < canary_fraction else primary
        return await run_in_threadpool(respond, raw, use)

    def respond(raw: bytes, use: Served) -> JSONResponse:
        result, records = answer(raw, use)
        windows[use.version].add(_as_numbers(records, use.model))  # the window has its own lock
        result["version"] = use.version
        return JSONResponse(result, headers={"x-model-version": use.version, "x-rows": str(len(records))})

    def validate_rows(given: Any) -> list[BaseModel]:
        """A batch, one row per call: the GIL is given back between rows, so /health (on the
        event loop) is not held for a whole 1,000-row validation. Same errors as `Batch`."""
        if not isinstance(given, list) or not 1 <= len(given) <= MAX_ROWS:
            Batch.model_validate({"rows": given})  # raises the list / length error
        rows, errors = [], []
        for i, item in enumerate(given):
            try:
                rows.append(Row.model_validate(item))
            except ValidationError as exc:
                found = exc.errors(include_url=False, include_input=False, include_context=False)
                errors += [{**e, "loc": ("rows", i, *e["loc"])} for e in found]
        if errors:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors])
        return rows

    def answer(raw: bytes, use: Served) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        try:
            body = parse_body(raw)
        except ValueError as exc:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": str(exc)}]
            ) from None
        batch = isinstance(body, dict) and "rows" in body
        try:
            rows = validate_rows(body["rows"]) if batch else [Row.model_validate(body)]
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
        except RecursionError:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "nested too deeply"}]
            ) from None
        records = [r.model_dump(by_alias=True) for r in rows]
        try:
            labels, probabilities = use.model.predict_with_proba(records)
        except SchemaError as exc:
            where: tuple[Any, ...] = ("body",)
            if batch and exc.row is not None:
                where += ("rows", exc.row)
            if exc.field is not None:
                where += (exc.field,)
            raise RequestValidationError([{"type": "value_error", "loc": where, "msg": str(exc)}]) from None
        result: dict[str, Any] = {"predictions": labels}
        if probabilities is not None:
            result[use.model.scores_kind or "probabilities"] = probabilities.tolist()
        return result, records

    protected = {"/metrics"} - ({"/metrics"} if open_metrics else set())
    protected |= {
        p for p in (app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url) if p
    }
    return LimitAndCount(app, metrics, api_key, protected)


class LimitAndCount:
    """ASGI middleware: refuse oversized POST bodies, guard the documentation and metrics with
    the API key, count every response for /metrics under its route (never the raw path).

    Written against ASGI directly: Starlette's BaseHTTPMiddleware costs a task and a stream
    per request, which is most of a millisecond on a busy two-core machine."""

    def __init__(
        self, app: FastAPI, metrics: Metrics, api_key: str | None = None, protected: set[str] | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.api_key = api_key
        self.protected = protected or set()
        self.routes = {getattr(r, "path", None) for r in app.routes} - {None}

    def route(self, path: str) -> str:
        return path if path in self.routes else UNMATCHED

    def __getattr__(self, name: str) -> Any:  # tests and tools may read app attributes
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = self.route(scope["path"])
        if self.api_key is not None and path in self.protected:
            given = dict(scope["headers"]).get(b"x-api-key", b"")
            if not secrets.compare_digest(given, self.api_key.encode()):
                response = JSONResponse(
                    status_code=401, content={"detail": "missing or wrong X-API-Key header"}
                )
                await response(scope, receive, send)
                self.metrics.observe(path, "-", 401, (time.perf_counter() - start) * 1000)
                return
        if scope["method"] == "POST":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is None or not length.isdigit() or int(length) > MAX_BODY_BYTES:
                status = 413 if length else 411
                response = JSONResponse(
                    status_code=status,
                    content={"detail": f"request body must declare Content-Length <= {MAX_BODY_BYTES} bytes"},
                )
                await response(scope, receive, send)
                self.metrics.observe(path, "-", status, (time.perf_counter() - start) * 1000)
                return
        seen: dict[str, Any] = {"status": 500, "version": "-", "rows": 0}

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for key, value in message.get("headers", []):
                    if key == b"x-model-version":
                        seen["version"] = value.decode()
                    elif key == b"x-rows":
                        seen["rows"] = int(value)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            ms = (time.perf_counter() - start) * 1000
            self.metrics.observe(path, seen["version"], seen["status"], ms, seen["rows"])
