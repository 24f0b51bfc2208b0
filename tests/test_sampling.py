"""#17 item 9: `--budget 20` on a 3M-row file fits the candidates on a seeded sample of the training
rows (tools/selection/sampling.py) instead of stopping every one of them and exiting 4.

Kept fast: the rule is tested as a pure function (a price in, a size out) and on the real nominal
prices of 3M rows without any data; the runs use a 3,000-row file whose nominal prices are
multiplied (PRICE_SCALE) as if the file were that much larger, and the sample's floors lowered
(SAMPLE_FLOOR, VAL_FLOOR), so the rule fires and samples at a few thousand rows, in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_long_fit_cap import ROWS, _csv  # the same 3,000-row, 20-feature classification file

from ml_expert.tools.selection import longfit, sampling
from ml_expert.tools.selection.candidates import CORE_BASELINES

PRICE_SCALE = 200.0  # the nominal prices of a file this many times larger
FLOOR, VAL_FLOOR = 1_000, 200


def _linear(rows: int) -> tuple[str, float]:
    return "linear", 0.05 + 1e-6 * rows * 21


def test_the_sample_is_the_largest_within_the_long_fit_share_found_by_bisection() -> None:
    budget = 20.0
    limit = longfit.LONG_FIT_SHARE * budget
    plan = sampling.plan_sample(_linear, 2_100_000, budget)
    assert plan is not None and plan.fired and plan.sample_rows is not None
    n = plan.sample_rows
    assert sampling.SAMPLE_FLOOR <= n < 2_100_000
    assert _linear(n)[1] <= limit < _linear(n + 1)[1]  # the largest size within the share
    assert plan.limit_seconds == limit and plan.cheapest == "linear"
    assert plan.cheapest_seconds_all == round(_linear(2_100_000)[1], 3)
    assert plan.cheapest_seconds_sample is not None and plan.cheapest_seconds_sample <= limit
    assert f"{n:,}" in plan.rule and "bisection" in plan.rule
    assert f"costs {_linear(2_100_000)[1]:.1f} s by the nominal rule on all 2,100,000" in plan.rule
    # within the share at all rows: no sample, and no budget: no rule
    small = sampling.plan_sample(_linear, 100_000, budget)
    assert small is not None and not small.fired and small.sample_rows is None
    assert sampling.plan_sample(_linear, 2_100_000, None) is None


def test_the_real_prices_of_3m_rows_at_budget_20_sample() -> None:
    """The nominal rule's own prices (no data): 2.1M training rows, 21 features out, binary."""
    price = sampling.cheapest_price(CORE_BASELINES, 21, 2, 20.0)
    name, full = price(2_100_000)
    assert name != "dummy" and full > longfit.LONG_FIT_SHARE * 20.0
    plan = sampling.plan_sample(price, 2_100_000, 20.0)
    assert plan is not None and plan.sample_rows is not None
    assert price(plan.sample_rows)[1] <= 5.0 < price(plan.sample_rows + 1)[1]


def test_the_floor_draws_no_sample_and_says_why() -> None:
    plan = sampling.plan_sample(_linear, 2_100_000, 0.4)  # 10,000 rows cost 0.26 s > 0.1 s
    assert plan is not None and plan.fired and plan.sample_rows is None
    assert f"{sampling.SAMPLE_FLOOR:,}-row floor costs 0.3 s > 0.10 s" in plan.rule
    few = sampling.plan_sample(_linear, 8_000, 0.1)
    assert few is not None and few.fired and few.sample_rows is None and "no more than" in few.rule


def test_the_sample_is_stratified_with_every_class_and_seeded() -> None:
    rng = np.random.default_rng(0)
    y = np.concatenate([np.zeros(90_000), np.ones(9_995), np.full(5, 2)]).astype(int)
    rng.shuffle(y)
    rows = sampling.draw(y, 10_000, seed=3, stratified=True)
    assert np.all(np.diff(rows) > 0) and len(np.unique(rows)) == len(rows)
    counts = np.bincount(y[rows], minlength=3)
    assert counts[2] == 5  # all of a class smaller than the minimum
    assert abs(counts[1] - 1_000) <= 1 and abs(len(rows) - 10_000) <= 5
    assert np.array_equal(rows, sampling.draw(y, 10_000, seed=3, stratified=True))  # same seed
    assert not np.array_equal(rows, sampling.draw(y, 10_000, seed=4, stratified=True))
    assert not np.array_equal(rows, sampling.draw(y, 10_000, seed=3, stratified=True, stream=1))
    rare = np.concatenate([np.zeros(99_990), np.ones(30)]).astype(int)
    kept = np.bincount(rare[sampling.draw(rare, 10_000, 0, True)])
    assert kept[1] >= sampling.SAMPLE_MIN_PER_CLASS  # 3 by its share, 10 by the minimum
    # regression: a plain seeded sample; validation: the same fraction, at least the floor or all
    assert len(sampling.draw(np.arange(50_000.0), 12_345, 0, False)) == 12_345
    assert sampling.val_size(300_000, 2_100_000, 450_000) == 64_286
    assert sampling.val_size(10_000, 2_100_000, 450_000) == sampling.VAL_FLOOR
    assert sampling.val_size(10_000, 2_100_000, 6_000) == 6_000


def test_the_same_seed_gives_the_same_sample_and_model(tmp_path: Path) -> None:
    from ml_expert.tools.data.prepare import load_split, prepare_data
    from ml_expert.tools.selection.baselines import run_baselines

    prepared = prepare_data(str(_csv(tmp_path)), "target", 0, tmp_path / "data")
    schema = prepared.input_schema
    train = load_split(prepared.files, "train", schema, prepared.file_hashes)
    val = load_split(prepared.files, "val", schema, prepared.file_hashes)
    plan = sampling.SamplePlan(
        fired=True, sample_rows=1_200, cheapest="linear", cheapest_seconds_all=1.0, limit_seconds=0.5, rule=""
    )
    boards = []
    for _ in range(2):
        t, v, record = sampling.sample_splits(plan, train, val, 7, True, 2.0)
        assert record.train_rows == len(t[1]) and record.val_rows == len(v[1]) == len(val[1])
        board = run_baselines(schema, t, v, "accuracy", 7, tmp_path / "m", names=("dummy", "linear"))
        boards.append([(c.name, c.val_score, c.train_score, c.fit_rows) for c in board])
    assert boards[0] == boards[1] and boards[0][1][3] == record.train_rows


@pytest.fixture
def large_prices(monkeypatch):
    """The 3,000-row file priced as if PRICE_SCALE times larger, the floors lowered to match."""
    from ml_expert.agents import researcher

    real = sampling.cheapest_price

    def scaled(*args, **kwargs):
        price = real(*args, **kwargs)
        return lambda rows: (price(rows)[0], PRICE_SCALE * price(rows)[1])

    monkeypatch.setattr(researcher, "cheapest_price", scaled)
    monkeypatch.setattr(sampling, "SAMPLE_FLOOR", FLOOR)
    monkeypatch.setattr(sampling, "VAL_FLOOR", VAL_FLOOR)


def test_a_run_fits_on_a_sample_and_ships_it(tmp_path: Path, large_prices) -> None:
    from ml_expert import run

    result = run(
        _csv(tmp_path), "target", budget=60.0, seed=0, memory="embedded", workspace=str(tmp_path / "ws")
    )
    assert result.ok and result.status == "finished", result.reason or result.error
    run_dir = Path(result.run_dir)
    selection = json.loads((run_dir / "findings" / "model-selection.json").read_text())
    sample = selection["sample"]
    assert abs(sample["train_total"] - 0.7 * ROWS) < 10
    assert FLOOR <= sample["train_rows"] < sample["train_total"]
    assert VAL_FLOOR <= sample["val_rows"] < sample["val_total"]
    assert sample["seed"] == 0 and sample["stratified"]
    assert sample["limit_seconds"] == longfit.LONG_FIT_SHARE * 60.0
    assert sample["cheapest_seconds_sample"] <= sample["limit_seconds"] < sample["cheapest_seconds_all"]
    fitted = [c for c in selection["leaderboard"] if c.get("fit_rows") is not None]
    assert fitted and all(c["fit_rows"] == sample["train_rows"] for c in fitted)
    record = json.loads((run_dir / "run.json").read_text())
    decisions = {d["decision"]: d["reason"] for d in record["decisions"]}
    assert any(d.startswith("fit the candidates on a sample") for d in decisions)
    assert not selection["plan"]["train_dnn"]  # budget 60 s would train it; the sample does not
    assert any(d.startswith("skip the Keras") and "sample" in r for d, r in decisions.items())
    training = json.loads((run_dir / "findings" / "training.json").read_text())
    chosen = training["chosen"]
    assert chosen["name"] == result.chosen_model and chosen.get("refit") is None and chosen["refit_rule"]
    assert any("as fit on the sample, without the refit" in d for d in decisions)
    report = (run_dir / "evaluation_report.md").read_text()
    assert f"Fit on {sample['train_rows']:,} of {sample['train_total']:,} training rows" in report


def test_at_the_floor_the_refusal_gives_the_sample_rules_figures(
    tmp_path: Path, monkeypatch, large_prices
) -> None:
    """Even the floor's sample is too costly (the prices x PRICE_SCALE, a 0.5 s budget): no sample is
    drawn, every fit but the dummy goes to a child (the cap's thresholds at 0) with a budget no child
    can start within, and the exit-4 message carries the sample rule's figures."""
    from typer.testing import CliRunner

    from ml_expert.cli import app

    monkeypatch.setattr(longfit, "LONG_FIT_SHARE", 0.0)
    monkeypatch.setattr(longfit, "LONG_FIT_MIN_S", 0.0)
    result = CliRunner().invoke(
        app,
        ["run", str(_csv(tmp_path)), "--target", "target", "--budget", "0.5", "--no-dnn", "--json"]
        + ["--memory", "embedded", "--workspace", str(tmp_path / "ws"), "--seed", "0"],
    )
    assert result.exit_code == 4, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert "every candidate but the dummy was stopped by the time cap" in error
    assert "The sample rule: the cheapest candidate" in error
    assert f"even the {FLOOR:,}-row floor costs" in error and "25% of the 0.5 s budget = 0.12 s" in error


def test_the_fits_on_ray_share_the_same_sample(tmp_path: Path, large_prices, ray_cluster: str) -> None:
    """The sample is drawn once, where the run is, and the fits on the cluster get those rows: the
    same sample, leaderboard and choice as in this process (tests/test_ray_execution.py's rule)."""
    from ml_expert import run

    csv = _csv(tmp_path)
    outcomes = []
    for where in (None, ray_cluster):
        result = run(
            csv,
            "target",
            budget=60.0,
            seed=0,
            train_dnn=False,
            memory="embedded",
            workspace=str(tmp_path / f"ws-{'ray' if where else 'local'}"),
            **({"ray": where} if where else {}),
        )
        assert result.ok, result.reason or result.error
        findings = Path(result.run_dir) / "findings"
        selection = json.loads((findings / "model-selection.json").read_text())
        assert selection["execution"]["mode"] == ("ray" if where else "local")
        board = [(c["name"], c["val_score"], c.get("fit_rows")) for c in selection["leaderboard"]]
        outcomes.append((selection["sample"], board, result.chosen_model))
    assert outcomes[0] == outcomes[1] and outcomes[0][0]["train_rows"] < outcomes[0][0]["train_total"]
