"""String labels, categories and dates through `ml-expert run`, the exports and `ml-expert predict`.

Includes a category never seen in training and a category seen on one training row only, which
must not be stored in any artifact.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from cli_helpers import predict_rows, run_quick

from ml_expert.memory import EmbeddedMemory
from ml_expert.tools.data.schema import InputSchema, to_model_frame

SINGLETON = "ultramarine-only-once"


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], size=n)
    size = rng.normal(10, 3, n).round(2)
    day = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    label = np.where(colour == "red", "keep", np.where(size > 10, "sell", "scrap"))
    return pd.DataFrame({"colour": colour, "size": size, "day": day.strftime("%Y-%m-%d"), "decision": label})


def test_string_labels_and_categories_round_trip_through_cli(tmp_path: Path) -> None:
    frame = _table(240, 0)
    frame.loc[5, "colour"] = SINGLETON
    data = tmp_path / "shop.csv"
    frame.to_csv(data, index=False)
    workspace = tmp_path / "ws"
    payload = run_quick(data, "decision", workspace, seed=1)
    run_dir = Path(payload["run_dir"])
    assert payload["ok"] and payload["gates"]["data"]

    # The data gate recorded its figures; the profile in memory holds aggregates and actions.
    gate = json.loads((run_dir / "run.json").read_text())["gates"]["data"]
    checks = {c["name"]: c for c in gate["checks"]}
    assert checks["rows_accounted"]["passed"] and checks["rows_accounted"]["value"]["rows_in"] == 240
    assert set(checks["rows_per_class"]["value"]) == {"keep", "scrap", "sell"}
    assert checks["splits_disjoint"]["passed"] and sum(checks["splits_disjoint"]["value"].values()) > 200
    analysis = EmbeddedMemory(workspace / "memory.sqlite").get(payload["run_id"], "data-analysis")
    assert analysis["classes"] == ["keep", "scrap", "sell"]
    assert all(f["action"] for f in analysis["findings"])
    assert {"name": "day", "kind": "numeric", "derive": "year"} in analysis["columns"]

    # No artifact holds the value seen on one training row.
    stored = [p for p in run_dir.rglob("*") if p.is_file() and p.suffix not in (".parquet", ".npy")]
    assert any(p.name == "model.onnx" for p in stored)
    for path in stored:
        assert SINGLETON.encode() not in path.read_bytes(), path

    new_rows = _table(30, 9).drop(columns="decision")
    new_rows.loc[0, "colour"] = "purple"  # never seen in training
    new_rows.loc[1, "colour"] = SINGLETON
    new_rows.loc[2, "colour"] = None
    new_rows.loc[3, "day"] = "not a date"
    predicted = predict_rows(payload["run_id"], new_rows, workspace, tmp_path)
    assert len(predicted) == 30 and set(predicted["prediction"]) <= {"keep", "scrap", "sell"}

    # The served predictions are the trained scikit-learn pipeline's, decoded to the labels.
    schema = InputSchema.model_validate_json((run_dir / "deployment" / "schema.json").read_text())
    chosen = payload["chosen_model"]
    model = joblib.load(run_dir / "exports" / chosen / "model.joblib")
    expected = model.predict_proba(to_model_frame(new_rows, schema))
    served = predicted[[f"proba_{c}" for c in schema.classes]].to_numpy()
    np.testing.assert_allclose(served, expected, atol=1e-4)
    assert list(predicted["prediction"]) == [schema.classes[i] for i in expected.argmax(axis=1)]
    red = (new_rows["colour"] == "red").to_numpy().copy()
    red[:4] = False
    assert red.sum() >= 3 and (predicted["prediction"][red] == "keep").mean() >= 0.8  # it learned the rule
