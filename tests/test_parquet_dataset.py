"""A Parquet dataset (a folder of files): read whole like the table it was cut from; over the
driver's budget, a seeded sample that is the same rows whether the files are read in the driver or
as tasks on a Ray cluster; files that are not one dataset are one clear data error."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_helpers import CLI

from ml_expert.agents.ml_developer.preparation import BUDGET_ENV
from ml_expert.errors import DataError
from ml_expert.tools.data import parquet
from ml_expert.tools.data.loading import load_source
from ml_expert.tools.data.parquet import plan_dataset, plan_parts, read_sample, row_keys
from ml_expert.tools.data.prepare import PreparedData, prepare_data

WINE = Path(__file__).resolve().parents[1] / "ml_expert" / "datasets" / "wine.csv"
CUTS = (0, 60, 120, 178)  # three files of wine's 178 rows
BUDGET = 9000  # bytes: wine is about 18,500 uncompressed, so about half its rows are read


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wine.csv cut into three Parquet files, with the files Spark writes beside them; one file in
    row groups of 16 rows, one with a pandas index written as a column (not data)."""
    root = tmp_path_factory.mktemp("wine-parquet") / "wine"
    root.mkdir()
    wine = pd.read_csv(WINE)
    for i, (start, stop) in enumerate(zip(CUTS, CUTS[1:], strict=False)):
        part = wine.iloc[start:stop]
        if i == 2:
            part = part.set_axis(pd.Index(np.arange(stop, start, -1)))
        part.to_parquet(root / f"part-{i:05d}.parquet", row_group_size=16 if i == 1 else None)
    (root / "_SUCCESS").write_text("")
    (root / ".part-00000.parquet.crc").write_bytes(b"\x00")
    return root


def _same(prepared: PreparedData) -> dict[str, Any]:
    """What must not depend on where the files were read (not the run folder's paths)."""
    return prepared.model_dump(exclude={"files", "source"})


def test_a_parquet_folder_reads_like_the_table_it_was_cut_from(folder: Path, tmp_path: Path) -> None:
    from_csv = prepare_data(str(WINE), "target", 0, tmp_path / "csv")
    from_folder = prepare_data(str(folder), "target", 0, tmp_path / "folder", read_budget=10**9)
    assert from_folder.fingerprint == from_csv.fingerprint
    assert from_folder.split_sizes == from_csv.split_sizes
    assert from_folder.load.files == 3 and from_folder.load.rows_total == 178
    assert from_folder.load.sample_rows is None  # it fits the budget: every row


def test_the_sample_is_the_rows_with_the_smallest_keys_in_file_order(folder: Path) -> None:
    plan = plan_dataset(folder)
    assert plan.files == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    sample, digest = read_sample(plan, 7, 50)
    keys = np.concatenate(
        [
            row_keys(7, name, stop - start)
            for name, start, stop in zip(plan.files, CUTS, CUTS[1:], strict=False)
        ]
    )
    expected = pd.read_csv(WINE).iloc[np.sort(np.argsort(keys)[:50])].reset_index(drop=True)
    pd.testing.assert_frame_equal(sample, expected)
    assert read_sample(plan, 8, 50)[0].ne(sample).any().any()  # another seed, other rows
    assert len(digest) == 64


def test_a_large_file_is_read_in_parts_of_whole_row_groups_with_the_same_rows(folder: Path) -> None:
    """One task per file left a single huge file to one task: it is now cut into runs of whole row
    groups, and the keys of a part are the whole file's keys at its rows, so the sample, its order
    and the digest do not depend on the cut."""
    plan = plan_dataset(folder)
    assert plan.row_groups[1] == [16, 16, 16, 12]
    whole = plan_parts(plan, 7, 0.5)
    assert [(s.name, s.groups) for s in whole] == [(name, None) for name in plan.files]
    cut = plan_parts(plan, 7, 0.5, part_rows=32)
    assert [(s.name[-9:-8], s.groups, s.start) for s in cut] == [
        ("0", None, 0),
        ("1", [0, 1], 0),
        ("1", [2, 3], 32),
        ("2", None, 0),
    ]
    np.testing.assert_array_equal(row_keys(7, "x", 28, start=32), row_keys(7, "x", 60)[32:])
    for size in (50, 178):  # a sample, and every row
        sample, digest = read_sample(plan, 7, size)
        in_parts, parts_digest = read_sample(plan, 7, size, part_rows=32)
        pd.testing.assert_frame_equal(in_parts, sample)
        assert parts_digest == digest


def test_read_on_the_cluster_is_the_read_in_the_driver(
    ray_cluster: str, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_expert.execution.ray_cluster import RayExecutor

    executor = RayExecutor(ray_cluster)
    on_cluster = prepare_data(
        str(folder), "target", 0, tmp_path / "ray", read_budget=BUDGET, map_fn=executor.map
    )
    in_driver = prepare_data(str(folder), "target", 0, tmp_path / "here", read_budget=BUDGET)
    assert _same(on_cluster) == _same(in_driver)
    assert 0 < on_cluster.load.sample_rows < 178 and on_cluster.rows_in == on_cluster.load.sample_rows
    assert executor.report.batches == ["Parquet files"] and executor.report.tasks_done == 3
    assert executor.report.data_puts == 0  # each task reads its own file: nothing goes through the driver
    monkeypatch.setattr(parquet, "PART_ROWS", 32)  # the 60-row file in two tasks of two row groups
    in_parts = prepare_data(
        str(folder), "target", 0, tmp_path / "parts", read_budget=BUDGET, map_fn=executor.map
    )
    assert _same(in_parts) == _same(in_driver) and executor.report.tasks_done == 3 + 4


def _data_phase(data: Path, workspace: Path, **options: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The data-preparation node alone, as the graph runs it: its decisions (run.json) and finding."""
    from langgraph.graph import END, START, StateGraph

    from ml_expert.agents.ml_developer.preparation import data_preparation
    from ml_expert.config import RunConfig

    config = RunConfig.build(data=str(data), seed=0, workspace=str(workspace), memory="embedded", **options)
    graph = StateGraph(dict)
    graph.add_node("data_preparation", data_preparation)
    graph.add_edge(START, "data_preparation")
    graph.add_edge("data_preparation", END)
    run_dir = workspace / "runs" / "run"
    graph.compile().invoke(
        {"options": config.model_dump(mode="json"), "run_id": "run", "run_dir": str(run_dir)}
    )
    record = json.loads((run_dir / "run.json").read_text())
    return record["decisions"], json.loads((run_dir / "findings" / "data-analysis.json").read_text())


def test_the_run_records_the_read_and_decides_alike_on_the_cluster_and_in_the_driver(
    ray_cluster: str, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_expert.execution import close_executors

    monkeypatch.setenv(BUDGET_ENV, str(BUDGET))
    try:
        on_cluster, cluster_data = _data_phase(folder, tmp_path / "ray", ray=ray_cluster)
    finally:
        close_executors()  # the session's cluster stays up: this connection is the fixture's
    in_driver, driver_data = _data_phase(folder, tmp_path / "here")

    def decided(decisions: list[dict[str, str]]) -> list[tuple[str, str]]:
        return [(d["decision"], d["reason"]) for d in decisions if "Parquet files" not in d["decision"]]

    assert decided(on_cluster) == decided(in_driver)
    same = [k for k in cluster_data if k not in ("source", "decisions")]  # decisions: compared above
    assert {k: cluster_data[k] for k in same} == {k: driver_data[k] for k in same}
    rows = cluster_data["load"]["sample_rows"]
    sampled = dict(decided(on_cluster))[f"read a seeded sample of {rows} of the 178 rows"]
    assert f"{BUDGET_ENV}=9,000" in sampled and "the same rows wherever the files are read" in sampled
    where = [d["decision"] for d in on_cluster if "Parquet files" in d["decision"]]
    assert where == [f"read the Parquet files as 3 Ray tasks on {ray_cluster}"]
    assert [d["decision"] for d in in_driver if "Parquet files" in d["decision"]] == [
        "read the Parquet files one after the other in this process (3 files)"
    ]


def _mismatched(root: Path) -> Path:
    wine = pd.read_csv(WINE)
    wine.iloc[:90].to_parquet(root / "a.parquet")
    wine.iloc[90:].astype({"alcohol": "string"}).to_parquet(root / "b.parquet")
    return root


def _no_parquet(root: Path) -> Path:
    pd.read_csv(WINE).to_csv(root / "wine.csv", index=False)
    return root


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (_mismatched, "do not share one schema: b.parquet 'alcohol' is large_string, not double"),
        (_no_parquet, "a folder without images or .parquet files"),
    ],
)
def test_files_that_are_not_one_dataset_are_a_clear_data_error(build, message: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    build(data)
    proc = subprocess.run(
        [*CLI, "run", str(data), "--target", "target", "--json", "--no-dnn", "--workspace", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]  # the documented exit code of a data error
    assert message in json.loads(proc.stdout)["error"] and "Traceback" not in proc.stderr


def test_columns_missing_from_a_file_are_named(tmp_path: Path) -> None:
    wine = pd.read_csv(WINE)
    wine.iloc[:90].to_parquet(tmp_path / "a.parquet")
    wine.iloc[90:].drop(columns=["hue"]).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"b.parquet lacks \['hue'\] \(compared with a.parquet\)"):
        load_source(str(tmp_path))
