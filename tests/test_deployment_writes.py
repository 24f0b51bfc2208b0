"""A run's deployment writes each file of its package once (#13): the package's latency is measured on
the staged files before README.md and manifest.json are written, instead of writing the package,
timing it and then rewriting both. The sealed package verifies, and the report and the README show
the latency that was measured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ml_expert import run
from ml_expert.runtime.inference import ModelInference


def test_a_run_writes_each_package_file_once(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = (workspace / "runs").resolve()
    counts: dict[str, int] = {}

    def counted(write):
        def wrapper(target, *args, **kwargs):
            path = Path(target).resolve()
            if path.is_relative_to(runs) and path.relative_to(runs).parts[1:2] == ("deployment",):
                name = Path(*path.relative_to(runs).parts[2:]).as_posix()
                counts[name] = counts.get(name, 0) + 1
            return write(target, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(Path, "write_text", counted(Path.write_text))
    monkeypatch.setattr(Path, "write_bytes", counted(Path.write_bytes))
    copyfile = shutil.copyfile

    def copy(src, dst, **kwargs):
        return counted(lambda target: copyfile(src, target, **kwargs))(dst)

    monkeypatch.setattr(shutil, "copyfile", copy)

    result = run("iris", train_dnn=False, budget=15, seed=5, workspace=workspace)
    monkeypatch.undo()
    assert result.ok, result.reason
    package = Path(result.run_dir) / "deployment"
    on_disk = sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    assert "manifest.json" in on_disk and "README.md" in on_disk
    assert counts == dict.fromkeys(on_disk, 1), counts  # every file written exactly once

    manifest = json.loads((package / "manifest.json").read_text())
    assert sorted([*manifest["files"], "manifest.json"]) == on_disk
    ModelInference(package)  # every file matches the manifest
    latency = manifest["latency"]
    shown = f"{latency['p50_ms']:.3f} | {latency['p95_ms']:.3f} | {latency['p99_ms']:.3f}"
    report = (Path(result.run_dir) / "evaluation_report.md").read_text()
    assert "| package (inference.py) | " in report and shown in report
    assert f"p50 {latency['p50_ms']:.3f} ms" in (package / "README.md").read_text()
