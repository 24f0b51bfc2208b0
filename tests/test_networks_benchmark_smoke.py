"""Smoke run of benchmarks/networks.py (tiny data, one epoch): its raw results hold what report.py
renders for the sequence readers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ is not an installed package

from benchmarks import networks, report  # noqa: E402


def test_networks_benchmark_smoke(tmp_path: Path) -> None:
    path = networks.main(
        ["--parts", "readers", "--text-rows", "120", "--sequence-rows", "120", "--epochs", "1"]
        + ["--output", str(tmp_path)]
    )
    doc = json.loads(Path(path).read_text())
    rows = doc["readers"]
    assert {(r["data"], r["reader"]) for r in rows} == {
        (d, r) for d in ("text", "sequence") for r in ("conv", "lstm", "transformer")
    }
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["epochs"] == 1 and r["params"] > 0 for r in rows)
    rendered = "\n".join(report.networks(doc))
    assert "transformer" in rendered and "lstm" in rendered
