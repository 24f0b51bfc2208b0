"""The registry through real runs: versions, production/previous, rollback, audit, name checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_expert import run
from ml_expert.registry import Registry, RegistryError

CLI = [sys.executable, "-m", "ml_expert"]


@pytest.fixture(scope="module")
def two_releases(tmp_path_factory: pytest.TempPathFactory) -> dict:
    ws = tmp_path_factory.mktemp("registry") / "ws"
    os.environ["ML_EXPERT_ACTOR"] = "registry-test"
    try:
        first = run("iris", seed=5, budget=60, workspace=ws, memory="embedded", train_dnn=False)
        second = run("iris", seed=5, budget=60, workspace=ws, memory="embedded", train_dnn=False)
    finally:
        del os.environ["ML_EXPERT_ACTOR"]
    assert first.status == second.status == "finished", (first.reason, second.reason)
    return {"ws": ws, "first": first, "second": second}


def cli(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "models", *args, "--workspace", str(ws)], capture_output=True, text=True, timeout=60
    )


def test_each_release_is_a_version_and_the_newest_is_production(two_releases: dict) -> None:
    ws = two_releases["ws"]
    registry = Registry(ws)
    assert registry.aliases() == {"production": "v2", "previous": "v1"}
    v1, v2 = registry.show("v1"), registry.show("v2")
    assert v1["run_id"] == two_releases["first"].run_id and v2["run_id"] == two_releases["second"].run_id
    # same data, seed and split: same held-out rows, so the gate compared the scores
    gate = json.loads((Path(two_releases["second"].run_dir) / "run.json").read_text())["gates"]["release"]
    check = next(c for c in gate["checks"] if c["name"] == "not_worse_than_production")
    assert check["threshold"] == v1["test_score"] and "same test rows" in check["detail"]
    # the copy is a complete, verified package (its own manifest hashes match)
    from ml_expert.runtime.inference import ModelInference

    model = ModelInference(registry.path("v2"))
    assert model.predict({c["name"]: 1.0 for c in model.columns})[0] in model.classes


def test_cli_list_promote_rollback_and_audit(two_releases: dict) -> None:
    ws = two_releases["ws"]
    listed = json.loads(cli(ws, "list", "--json").stdout)
    assert [v["version"] for v in listed["versions"]] == ["v1", "v2"]
    assert listed["versions"][1]["aliases"] == ["production"]
    rolled = cli(ws, "rollback", "--json")
    assert rolled.returncode == 0 and json.loads(rolled.stdout)["aliases"] == {
        "production": "v1",
        "previous": "v2",
    }
    shown = json.loads(cli(ws, "show", "production").stdout)
    assert shown["version"] == "v1" and shown["aliases"] == ["production"]
    promoted = cli(ws, "promote", "v2", "--json")
    assert json.loads(promoted.stdout)["aliases"] == {"production": "v2", "previous": "v1"}
    again = cli(ws, "promote", "v2", "--json")
    assert again.returncode == 2 and "already production" in json.loads(again.stdout)["error"]
    audit = Registry(ws).audit()
    assert [a["action"] for a in audit] == [
        "register",
        "promote",
        "register",
        "promote",
        "rollback",
        "promote",
    ]
    assert audit[0]["who"] == "registry-test" and audit[0]["run_id"] == two_releases["first"].run_id
    assert audit[0]["metrics"]["accuracy"] > 0.5 and audit[-1]["who"]  # who: the login user
    lines_before = (ws / "registry" / "audit.log").read_text()
    cli(ws, "rollback")
    assert (ws / "registry" / "audit.log").read_text().startswith(lines_before)  # appended, not rewritten


def test_predict_serve_drift_and_mcp_name_a_model_the_same_way(two_releases: dict, tmp_path: Path) -> None:
    """`predict production` works where `serve production` does, and MCP reads the same registry."""
    import asyncio

    import pandas as pd

    from ml_expert.mcp_server import build_server, list_models
    from ml_expert.registry import resolve_package

    ws = two_releases["ws"]
    production = Registry(ws).aliases()["production"]  # earlier tests promote and roll back
    rows = pd.read_csv(Path(__file__).resolve().parents[1] / "ml_expert" / "datasets" / "iris.csv").head(5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    for name in ("production", "v1", two_releases["first"].run_id):
        out = tmp_path / f"{name}.csv"
        proc = subprocess.run(
            [*CLI, "predict", name, str(tmp_path / "rows.csv"), "-o", str(out), "--workspace", str(ws)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(pd.read_csv(out)) == 5
    assert resolve_package("production", ws) == (Registry(ws).path(production), production)
    drift = subprocess.run(
        [*CLI, "drift", "production", str(tmp_path / "rows.csv"), "--json", "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert drift.returncode == 0 and json.loads(drift.stdout)["version"] == production, drift.stderr[-2000:]

    listed = list_models(ws)
    assert listed["source"] == "registry" and listed["aliases"]["iris"]["production"] == production
    assert [m["version"] for m in listed["models"]] == ["v1", "v2"]
    server = build_server(ws)
    features = rows.drop(columns=["target"]).to_dict(orient="records")
    result = asyncio.run(server.call_tool("predict", {"model": "production", "rows": features}))
    predicted = result.structured_content
    assert predicted["model"] == production and len(predicted["predictions"]) == 5


@pytest.mark.parametrize("name", ["../v1", "v1/../../etc", "/etc/passwd", "v0", "V1", "v1 ", "production/.."])
def test_names_from_users_are_validated(two_releases: dict, name: str) -> None:
    ws = two_releases["ws"]
    with pytest.raises(RegistryError):
        Registry(ws).resolve(name)
    proc = cli(ws, "promote", name, "--json")
    assert proc.returncode == 2 and "not a version name" in json.loads(proc.stdout)["error"]


def test_unknown_version_and_symlink_out_are_refused(two_releases: dict, tmp_path: Path) -> None:
    ws = two_releases["ws"]
    assert cli(ws, "show", "v99").returncode == 2
    outside = tmp_path / "elsewhere"
    (outside).mkdir()
    (outside / "version.json").write_text("{}")
    (ws / "registry" / "versions" / "v50").symlink_to(outside)
    with pytest.raises(RegistryError, match="no version v50"):
        Registry(ws).path("v50")


def test_register_refuses_a_package_that_changed(two_releases: dict, tmp_path: Path) -> None:
    import shutil

    package = tmp_path / "pkg"
    shutil.copytree(Path(two_releases["first"].run_dir) / "deployment", package)
    (package / "schema.json").write_text((package / "schema.json").read_text() + " ")
    with pytest.raises(RegistryError, match="schema.json"):
        Registry(two_releases["ws"]).register(package, {"run_id": "x"})
    assert not any(p.name.startswith(".v") for p in (two_releases["ws"] / "registry" / "versions").iterdir())
