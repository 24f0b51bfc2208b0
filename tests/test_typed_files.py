"""Issue 13's last dict seams, read through their models: the registry's files (version.json,
aliases.json, audit.log), a package's manifest.json, the run's stored options (memory sync), the
approval record, the graph's `retries` channel and the data result's outlier report.

Each test fails on the code before (f17b9e9), where these were dicts read with `.get(key)`: a
misspelt key read None and the run went on (a misspelt approval deployed, misspelt retries read 0).
The files on disk stay what the dicts wrote: a registry written by f17b9e9 loads, and the same
operations today write the same files, key for key, in the same order."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_expert.errors import PhaseResultError

FIXTURE = Path(__file__).parent / "fixtures" / "registry_f17b9e9"
STAMP = re.compile(r'"(when|registered)": "[0-9T:Z-]+"')


def _files(root: Path) -> dict[str, str]:
    """Every file under root, its timestamps blanked (the only values a second writing changes)."""
    return {
        str(p.relative_to(root)): STAMP.sub(r'"\1": "-"', p.read_text())
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    }


def test_a_registry_written_today_is_byte_for_byte_the_previous_versions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURE))
    sys.modules.pop("written_by", None)
    from written_by import write

    write(tmp_path)
    assert _files(tmp_path) == _files(FIXTURE)  # same files, same keys, same order, same layout


def test_a_registry_written_by_the_previous_version_loads_typed(tmp_path: Path, monkeypatch) -> None:
    from ml_expert.registry import Registry
    from ml_expert.registry.records import VersionRecord

    monkeypatch.setenv("ML_EXPERT_ACTOR", "fixture")
    shutil.copytree(FIXTURE / "registry", tmp_path / "registry")
    registry = Registry(tmp_path, model="iris")
    production = registry.record("production")
    assert isinstance(production, VersionRecord)
    assert (production.version, production.test_score, production.aliases) == ("v2", 0.95, ["production"])
    assert production.split_sizes == {"train": 100, "val": 25, "test": 25} and production.parent is None
    assert [r.version for r in registry.records()] == ["v1", "v2"]
    assert [e["action"] for e in registry.audit()] == ["register", "promote"] * 2 + ["rollback", "promote"]
    # the old registry takes a third release, written like the first two
    third = {**json.loads((FIXTURE / "registry/versions/v2/version.json").read_text()), "run_id": "r3"}
    assert registry.register(FIXTURE / "pkg", third) == "v3"
    written = json.loads((tmp_path / "registry/versions/v3/version.json").read_text())
    assert list(written) == list(json.loads((FIXTURE / "registry/versions/v2/version.json").read_text()))
    assert registry.aliases() == {"production": "v3", "previous": "v2"}


def test_a_damaged_version_record_is_refused_naming_the_file(tmp_path: Path) -> None:
    """A version.json whose score is not a number: the comparison with production used to compare
    text with a float (a TypeError mid-release) and `models list` printed it as a score."""
    from ml_expert.registry import Registry, RegistryError

    shutil.copytree(FIXTURE / "registry", tmp_path / "registry")
    file = tmp_path / "registry/versions/v2/version.json"
    file.write_text(file.read_text().replace('"test_score": 0.95', '"test_score": "high"'))
    with pytest.raises(RegistryError, match=r"versions/v2/version.json is damaged.*test_score"):
        Registry(tmp_path, model="iris").show("production")
    assert [v["version"] for v in Registry(tmp_path, model="iris").versions()] == ["v1"]  # the rest listed
    # the release gate refuses instead of reading a damaged production as "no production yet"
    from phase_helpers import deployment_result, validation_result

    from ml_expert.graph.gates import release_gate

    state = {
        "options": {"workspace": str(tmp_path), "seed": 42, "model_name": "iris"},
        "data": {
            "source": "iris.csv",
            "fingerprint": "f" * 64,
            "split_sizes": {"train": 100, "val": 25, "test": 25},
        },
        "validation": validation_result(),
        "deployment": deployment_result(),
    }
    check = {c.name: c for c in release_gate(state).checks}["not_worse_than_production"]
    assert not check.passed and "version.json is damaged" in check.detail, check


def test_the_production_comparison_reads_the_record_typed(tmp_path: Path) -> None:
    """The guard sees production's version.json as a model; a record without a score is worse."""
    from ml_expert.registry import Registry, not_worse_than
    from ml_expert.registry.records import ReleaseCandidate

    shutil.copytree(FIXTURE / "registry", tmp_path / "registry")
    production = Registry(tmp_path, model="iris").record("production")
    rows = {"data_fingerprint": "f" * 64, "seed": 42, "split_sizes": {"train": 100, "val": 25, "test": 25}}
    candidate = ReleaseCandidate(**rows, primary_metric="accuracy", test_score=0.96)
    assert not_worse_than(candidate, production) == (True, not_worse_than(candidate, production)[1])
    assert not not_worse_than(candidate, production.model_copy(update={"test_score": None}))[0]
    other = candidate.model_copy(update={"seed": 7})
    passed, detail = not_worse_than(other, production)
    assert passed and "different split seed: 7 vs 42" in detail


def test_drift_refuses_a_manifest_without_its_file_table_naming_it(tmp_path: Path) -> None:
    """It used to say the package 'has no training_stats.json (built before drift support)'."""
    from ml_expert.cli import app

    package = tmp_path / "pkg"
    shutil.copytree(FIXTURE / "pkg", package)
    (package / "manifest.json").write_text(json.dumps({"format": "ml-expert-manifest/1", "file": {}}))
    data = tmp_path / "new.csv"
    data.write_text("a\n1\n")
    result = CliRunner().invoke(app, ["drift", str(package), str(data), "--workspace", str(tmp_path)])
    assert result.exit_code != 0
    said = "".join(result.output.split())  # the terminal wraps a long path anywhere, even mid-word
    assert "manifest.json:notapackagemanifest(files:Fieldrequired)" in said, result.output


def test_the_served_package_metadata_comes_from_the_typed_manifest(tmp_path: Path) -> None:
    from ml_expert.tools.deployment.manifest import PackageManifest

    manifest = PackageManifest.read(FIXTURE / "pkg")
    assert (manifest.model, manifest.run_id, manifest.latency) == ("lightgbm", "r1", None)
    assert manifest.model_dump(mode="json", exclude_unset=True) == json.loads(
        (FIXTURE / "pkg/manifest.json").read_text()
    )


def test_memory_sync_refuses_a_run_config_with_a_key_it_does_not_know(tmp_path: Path) -> None:
    """A misspelt `memroy` in run.json's config read as no memory option: the findings were replayed
    into the embedded store, not the run's Redis, and the command said it had worked."""
    from ml_expert.cli import app

    path = tmp_path / "ws" / "runs" / "r1"
    path.mkdir(parents=True)
    config = {"memroy": "redis://127.0.0.1:6379/0"}
    (path / "run.json").write_text(json.dumps({"run_id": "r1", "status": "finished", "config": config}))
    result = CliRunner().invoke(app, ["memory", "sync", "r1", "--workspace", str(tmp_path / "ws")])
    said = "".join(result.output.split())  # the console wraps long paths
    assert result.exit_code == 2 and "r1/run.json:" in said and "memroy:unknownoption" in said, said


def test_the_approval_record_is_read_typed(tmp_path: Path) -> None:
    """A misspelt approval used to read as approved (`.get("approved", True)`) and deploy."""
    from pydantic import ValidationError

    from ml_expert.graph.approval import after_approval
    from ml_expert.runs import RunFile, RunStatus

    record = {"approved": False, "by": "cli", "note": "no", "at": "2026-12-02T17:00:00Z"}
    assert after_approval({"approval": record}) == "finish"
    assert after_approval({"approval": {**record, "approved": True}}) == "deployment"
    assert after_approval({}) == "deployment"  # no approval asked for
    with pytest.raises(ValidationError, match="approved"):
        after_approval({"approval": {"aproved": False, "by": "cli"}})
    run = RunFile(tmp_path)
    run.start("r1", RunStatus.RUNNING, "approval")
    run.update(approval=record)
    assert run.read().approval.by == "cli"
    assert list(json.loads((tmp_path / "run.json").read_text())["approval"]) == list(record)


def test_the_retries_channel_is_read_typed() -> None:
    """A misspelt channel key read as 0 retries: the gate passed and the router retried again."""
    from ml_expert.agents.retry import TRAINING_RETRY

    assert TRAINING_RETRY.retries({}) == 0 and TRAINING_RETRY.retries({"retries": {"training": 2}}) == 2
    with pytest.raises(PhaseResultError, match="trainig"):
        TRAINING_RETRY.retries({"retries": {"trainig": 2}})
    from ml_expert.agents.retry import Retries

    assert Retries(training=1).state() == {"training": 1}


def test_the_outlier_report_is_typed_and_written_as_before() -> None:
    import pandas as pd
    from pydantic import ValidationError

    from ml_expert.phases import DataResult

    with pytest.raises(ValidationError, match="outliers.flagged"):  # was: any dict at all
        DataResult.model_validate({"outliers": {"flagged": "many"}})
    from ml_expert.tools.data.cleaning import OutlierReport, drop_outliers

    frame = pd.DataFrame({"x": [float(i % 17) for i in range(60)] + [500.0], "y": [0, 1] * 30 + [1]})
    kept, report = drop_outliers(frame, ["x"], "y", "classification", apply=True)
    assert isinstance(report, OutlierReport) and report.dropped == 1 and len(kept) == 60
    assert list(report.model_dump(mode="json")) == [
        "rule", "rare_class_rule", "flagged", "kept_rare_class", "dropped", "rare_classes",
        "columns_checked", "action",
    ]  # fmt: skip
    assert OutlierReport(action="not applied").model_dump(mode="json") == {"action": "not applied"}


def test_an_unreadable_approval_decision_is_not_approved_and_says_why(tmp_path: Path, monkeypatch) -> None:
    """A decision with a misspelt `approved` was read as "no" and the run said only "deployment not
    approved": the person who approved it could not tell why nothing deployed."""
    from phase_helpers import validation_result

    import ml_expert.graph.approval as node
    from ml_expert.runs import RunFile, RunStatus

    RunFile(tmp_path).start("r1", RunStatus.RUNNING, "approval")
    state = {
        "options": {"workspace": str(tmp_path), "require_approval": True},
        "run_id": "r1",
        "run_dir": str(tmp_path),
        "validation": validation_result(),
    }
    monkeypatch.setattr(node, "interrupt", lambda request: {"aproved": True, "by": "cli"})
    update = node.approval(state)
    assert update["status"] == "refused" and "approved: Field required" in update["reason"], update
    assert list(update["approval"]) == ["approved", "by", "note", "at"]
    monkeypatch.setattr(node, "interrupt", lambda request: {"approved": True, "by": "cli", "note": "ok"})
    update = node.approval(state)
    assert update["status"] == "running" and update["approval"]["by"] == "cli"
    assert RunFile(tmp_path).read().approval.note == "ok"
