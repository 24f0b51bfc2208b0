"""The deployment package: everything needed to serve the model, and nothing else.

model.onnx (preprocessing inside), schema.json, inference.py (ml_expert/runtime/inference.py,
verbatim), requirements.txt, any extra files the caller adds (a Dockerfile), then README.md and
last manifest.json with the SHA-256 of every other file: `ModelInference` refuses to load
a package whose files do not match it. Each file is written once: figures measured on the package
itself (its latency) are taken on the staged files before the README and the manifest are written.
No training rows are written.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable, Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from ml_expert.hashing import sha256_file
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.deployment.manifest import MANIFEST_FORMAT
from ml_expert.tools.validation.latency import Latency

RUNTIME_REQUIREMENTS: dict[str, str] = {"onnxruntime": "1.32.0", "numpy": "2.4.6"}
"""What inference.py needs, pinned to the versions the exports were checked with."""

RESERVED_KEYS = ("format", "files")


def runtime_source() -> Path:
    """Path of ml_expert/runtime/inference.py, found without importing it (no onnxruntime load)."""
    spec = importlib.util.find_spec("ml_expert.runtime.inference")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("ml_expert.runtime.inference is not installed with the package")
    return Path(spec.origin)


def server_source() -> Path:
    """Path of ml_expert/runtime/server.py (the stdlib server the Dockerfile runs)."""
    spec = importlib.util.find_spec("ml_expert.runtime.server")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("ml_expert.runtime.server is not installed with the package")
    return Path(spec.origin)


PYTHON_IMAGE = "python:3.11.7-slim"
"""The base image: the CPython version the exports were checked with, slim (no compilers)."""


def dockerfile_text() -> str:
    """A Dockerfile that serves the package with server.py; pinned base image and requirements."""
    return f"""# Serves this ml-expert model: docker build -t model . && docker run -p 8080:8080 model
FROM {PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/model
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# inference.py refuses to start if any file differs from manifest.json
RUN python -c "from inference import ModelInference; ModelInference('.')"
RUN useradd --system --no-create-home model
USER model
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health')"
CMD ["python", "server.py", "--host", "0.0.0.0", "--port", "8080"]
"""


def requirements_text() -> str:
    lines = []
    for name, pinned in RUNTIME_REQUIREMENTS.items():
        try:
            version = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            version = pinned
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


EXTRA_FILES = {
    "cluster_profiles.json": "each cluster described by the original columns (aggregates over >= 5 "
    "training rows)",
}


Measure = Callable[[Path, dict[str, str]], Mapping[str, Any]]
"""Figures measured on the staged package (its directory and {file: SHA-256}, the table to verify
against before manifest.json exists), returned as manifest keys: the package's own latency."""


def write_package(
    deploy_dir: str | Path,
    onnx_path: str | Path,
    schema: InputSchema,
    metadata: Mapping[str, Any],
    extra_files: Mapping[str, str | bytes] | None = None,
    measure: Measure | None = None,
) -> dict[str, Any]:
    """Write the package into `deploy_dir`, every file once, and return its manifest.

    `metadata` (seed, package versions, data fingerprint, model name, metrics, created, ...)
    is copied into manifest.json next to `format` and `files`; `extra_files` maps a relative
    name to its content (e.g. a Dockerfile) and is hashed like the rest. `measure`, when given,
    runs on the staged files (all but README.md and manifest.json) and its keys join the metadata:
    the README that shows them and the manifest are written after it, once.
    """
    clash = [key for key in RESERVED_KEYS if key in metadata]
    if clash:
        raise ValueError(f"metadata may not set {clash}: write_package owns them")
    root = Path(deploy_dir)
    root.mkdir(parents=True, exist_ok=True)
    # an earlier, interrupted build's manifest must not vouch for the files written now
    (root / "manifest.json").unlink(missing_ok=True)
    written: list[str] = []

    def put(name: str, content: str | bytes) -> None:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
        written.append(name)

    for name in extra_files or {}:
        if Path(name).is_absolute() or ".." in Path(name).parts or name in ("manifest.json", "README.md"):
            raise ValueError(f"extra file name {name!r} must be a relative path inside the package")
    shutil.copyfile(onnx_path, root / "model.onnx")
    written.append("model.onnx")
    put("schema.json", schema.model_dump_json(indent=2) + "\n")
    shutil.copyfile(runtime_source(), root / "inference.py")
    written.append("inference.py")
    put("requirements.txt", requirements_text())
    for name, content in (extra_files or {}).items():
        put(name, content)
    staged = {name: sha256_file(root / name) for name in written}
    measured = dict(measure(root, dict(staged))) if measure is not None else {}
    clash = [key for key in RESERVED_KEYS if key in measured]
    if clash:
        raise ValueError(f"measured figures may not set {clash}: write_package owns them")
    described = {**dict(metadata), **measured}
    put("README.md", readme_text(schema, described, tuple(extra_files or {})))
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "files": {name: sha256_file(root / name) for name in sorted(set(written))},
        **described,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return json.loads(json.dumps(manifest, default=str))


def readme_text(schema: InputSchema, metadata: Mapping[str, Any], extra_names: tuple[str, ...] = ()) -> str:
    """A README that says what each file is and how to call the model (no data rows)."""
    model_name = metadata.get("model_name") or metadata.get("model") or "model"
    created = metadata.get("created", "unknown")
    metrics = metadata.get("metrics") or {}
    example = {
        c.name: (
            "some text"
            if c.derive in ("word", "token")
            else (c.separator or "/").join(["A", "1"])
            if c.derive == "part"
            else next(iter(c.counts or {"A1": 0}))
            if c.derive == "count"
            else "2024-01-31"
            if c.derive
            else 0.0
            if c.kind == "numeric"
            else (c.categories or [""])[0]
        )
        for c in schema.columns
    }
    lines = [
        f"# {model_name}: {schema.task} of `{schema.target}`"
        if schema.task != "clustering"
        else f"# {model_name}: clustering (predict returns each row's cluster number)",
        "",
        f"Created {created} by ml-expert.",
        "",
        "## Files",
        "",
        "| file | what it is |",
        "|---|---|",
        "| `model.onnx` | the model with its preprocessing inside; one input per raw column |",
        "| `schema.json` | input schema: columns, their kind (numeric / categorical) and the classes |",
        "| `inference.py` | `ModelInference`: verifies the files, validates rows, predicts |",
        "| `requirements.txt` | the pinned runtime dependencies |",
        "| `manifest.json` | SHA-256 of every file, seed, versions, data fingerprint, metrics |",
        "| `server.py` | a standard-library HTTP server over `inference.py` (POST /predict, GET /health) |",
        "| `Dockerfile` | builds an image that runs `server.py` on port 8080 |",
        "| `training_stats.json` | training-split aggregates (quantiles, category shares) for drift |",
        *[
            f"| `{name}` | {EXTRA_FILES.get(name, 'supplied by the pipeline')} |"
            for name in extra_names
            if name not in ("server.py", "Dockerfile", "training_stats.json")
        ],
        "",
        "## Use",
        "",
        "```python",
        "from inference import ModelInference",
        "",
        'model = ModelInference(".")  # refuses to load if a file does not match manifest.json',
        f"row = {json.dumps(example)}",
        "print(model.predict(row))  # also a list of dicts or a pandas DataFrame",
    ]
    if schema.task == "classification":
        lines.append("print(model.classes, model.predict_proba(row))")
    if schema.task == "clustering":
        lines.append("clusters, scores = model.predict_with_proba(row)  # scores: model.scores_kind")
    lines += [
        "```",
        "",
        "Or from a shell: `pip install -r requirements.txt && python inference.py rows.json`.",
        "Missing values may be `null`; columns not in the schema are ignored.",
        "",
        "## Inputs",
        "",
        "| column | kind |",
        "|---|---|",
        *[f"| `{c.name}` | {c.kind} |" for c in schema.columns],
    ]
    if schema.classes is not None:
        lines += ["", f"Classes: {', '.join(f'`{c}`' for c in schema.classes)}"]
    lines += [
        "",
        "## Serve",
        "",
        "`docker build -t model . && docker run -p 8080:8080 model`, or without Docker",
        "`python server.py --port 8080`; then `curl -d '{\"rows\": [...]}' localhost:8080/predict`.",
    ]
    if metadata.get("latency"):  # the package's own latency (the `measure` step's manifest key)
        latency = Latency.model_validate(metadata["latency"])
        lines += [
            "",
            "## Measured latency (this package through inference.py, one row per call)",
            "",
            f"p50 {latency.p50_ms:.3f} ms, p95 {latency.p95_ms:.3f} ms, "
            f"p99 {latency.p99_ms:.3f} ms; "
            f"batch of {latency.batch_rows} rows: {latency.batch_rows_per_second:.0f} rows/s. "
            f"Measured on the build machine: {metadata.get('measured_on', 'unknown')}.",
        ]
    lines += ["", "## Requirements", "", "```", requirements_text().strip(), "```"]
    size = metadata.get("model_size_bytes")
    if size:
        lines += ["", f"Model size: {size} bytes (`model.onnx`)."]
    if metrics:
        lines += ["", "## Test metrics", "", "| metric | value |", "|---|---|"]
        for name, value in metrics.items():
            shown = f"{value:.4g}" if isinstance(value, float) else json.dumps(value, default=str)
            lines.append(f"| {name} | {shown} |")
    return "\n".join(lines) + "\n"
