"""Model names: two projects released into one workspace keep their own production and previous.

Real runs (iris and wine, no network, small budget) into one workspace, then the registry, the
`models` CLI, `predict NAME` and the resolver; and a registry written before model names (one
unnamed model, aliases at the root) still reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ml_expert import run
from ml_expert.registry import Registry, RegistryError, resolve_package

CLI = [sys.executable, "-m", "ml_expert"]


@pytest.fixture(scope="module")
def two_projects(tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> dict:
    ws = tmp_path_factory.mktemp("names") / "ws"
    iris = run(
        str(datasets / "iris.csv"), budget=20, seed=1, workspace=ws, memory="embedded", train_dnn=False
    )
    wine = run("wine", budget=20, seed=1, workspace=ws, memory="embedded", train_dnn=False)
    again = run(
        str(datasets / "iris.csv"), budget=20, seed=1, workspace=ws, memory="embedded", train_dnn=False
    )
    assert iris.status == wine.status == again.status == "finished", (iris.reason, wine.reason, again.reason)
    return {"ws": ws, "iris": iris, "wine": wine, "again": again}


def models(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "models", *args, "--workspace", str(ws)], capture_output=True, text=True, timeout=60
    )


def test_each_name_has_its_own_production(two_projects: dict) -> None:
    ws = two_projects["ws"]
    assert Registry(ws).model_names() == ["iris", "wine"]
    assert Registry(ws, model="iris").aliases() == {"production": "v3", "previous": "v1"}
    assert Registry(ws, model="wine").aliases() == {
        "production": "v2"
    }  # the second iris release left it alone
    finding = json.loads((Path(two_projects["wine"].run_dir) / "findings" / "registry.json").read_text())
    assert finding["model_name"] == "wine" and finding["version"] == "v2"

    listed = json.loads(models(ws, "list", "--json").stdout)
    assert [(m["name"], [v["version"] for v in m["versions"]], m["aliases"]) for m in listed["models"]] == [
        ("iris", ["v1", "v3"], {"production": "v3", "previous": "v1"}),
        ("wine", ["v2"], {"production": "v2"}),
    ]
    rolled = models(ws, "rollback", "--model-name", "iris", "--json")
    assert json.loads(rolled.stdout)["aliases"] == {"production": "v1", "previous": "v3"}
    assert Registry(ws, model="wine").aliases() == {"production": "v2"}
    assert models(ws, "rollback", "--json").returncode == 2  # two models: say which
    wine_v2 = models(
        ws, "promote", "v2", "--json"
    )  # v2 is wine's: promoted within wine, where it is production
    assert wine_v2.returncode == 2 and "already production" in wine_v2.stdout


def test_names_resolve_for_predict_and_serve(two_projects: dict, tmp_path: Path, datasets: Path) -> None:
    ws = two_projects["ws"]
    assert resolve_package("wine", ws)[1] == "v2"
    assert resolve_package("iris@previous", ws)[1] == "v3"  # after the rollback above
    with pytest.raises(RegistryError, match="several models"):
        resolve_package("production", ws)
    rows = pd.read_csv(datasets / "wine.csv").drop(columns=["target"]).head(4)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [*CLI, "predict", "wine", str(tmp_path / "rows.csv"), "-o", str(out), "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(out)) == 4


def test_a_registry_from_before_names_still_reads(two_projects: dict, tmp_path: Path) -> None:
    """The old layout: versions without model_name, aliases.json at the registry's root."""
    old = tmp_path / "old"
    source = Registry(two_projects["ws"], model="wine")
    (old / "registry" / "versions").mkdir(parents=True)
    target = old / "registry" / "versions" / "v1"
    shutil.copytree(source.path("v2"), target)
    record = json.loads((target / "version.json").read_text())
    record.pop("model_name")
    record["version"] = "v1"
    (target / "version.json").write_text(json.dumps(record))
    (old / "registry" / "aliases.json").write_text(json.dumps({"production": "v1"}))

    assert Registry(old).aliases() == {"production": "v1"} and Registry(old).model is None
    assert resolve_package("production", old)[1] == "v1"
    listed = json.loads(models(old, "list", "--json").stdout)
    assert listed["models"] == [
        {"name": None, "aliases": {"production": "v1"}, "versions": listed["versions"]}
    ]
