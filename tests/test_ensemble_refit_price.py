"""The ensemble's refit is priced as its members were fit (issue #12): a member at its defaults at the
defaults' nominal cost (not the tuning search's SEARCH_COST), a sampled configuration at the
search's, a forest at the trees it grew, and a member the greedy selection picked several times once.

On diamonds (seed 0, budget 60) the old price, every member at SEARCH_COST and the forest at
forest_size(rows) trees, was 57.6-60.9 s for a refit that took about 9 s, so the ensemble shipped fit
on the training split only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_model_families import SEED, TITANIC, split

import ml_expert.tools.selection.ensemble_candidate as ensemble_candidate_module
from ml_expert.tools.data.schema import to_model_frame
from ml_expert.tools.selection.baselines import CandidateResult, fit_candidate
from ml_expert.tools.selection.candidates import forest_size
from ml_expert.tools.selection.ensemble_candidate import REFIT_SHARE, ensemble_candidate, refit_prices
from ml_expert.tools.selection.longfit import nominal_candidate_seconds
from ml_expert.tools.selection.tuning import (
    BOOST_ROUND_COST,
    SEARCH_COST,
    nominal_fit_seconds,
    sampled_configuration,
)


def _candidate(name: str, base: str | None = None, **fields) -> CandidateResult:
    return CandidateResult(
        name=name,
        family="trees",
        kind="sklearn",
        val_score=0.5,
        train_score=0.5,
        fit_seconds=1.0,
        base=base,
        **fields,
    )


def test_a_member_is_priced_as_it_was_fit() -> None:
    rows, train_rows, features, classes = 45_724, 37_655, 26, None
    forest = _candidate("random_forest", params={"n_estimators": 34})
    boosted = _candidate(
        "lightgbm", params={"learning_rate": 0.05, "n_estimators": 232}, params_rule="232 rounds at 0.05"
    )
    tuned = _candidate(
        "hist_gradient_boosting_tuned", base="hist_gradient_boosting", params={"max_leaf_nodes": 63}
    )
    prices = refit_prices([forest, boosted, tuned], "regression", rows, train_rows, features, classes)
    # the forest: the 34 trees it grew, at the defaults' cost (not forest_size(rows) = 100 x 1.5)
    assert prices["random_forest"] == pytest.approx(1.0 + 3e-4 * rows * 34 / 100)
    # early-stopped rounds are the data's rule, not a sampled configuration: the defaults' cost
    assert not sampled_configuration("lightgbm", "regression", boosted.params, boosted.params_rule)
    # and with its rounds known the refit has no round search: priced per round
    per_round = 0.2 + BOOST_ROUND_COST * rows * features * 232
    assert prices["lightgbm"] == pytest.approx(per_round)
    assert per_round < nominal_fit_seconds("lightgbm", rows, features, classes, True) / 3
    # a configuration the search sampled: the search's cost
    assert sampled_configuration("hist_gradient_boosting", "regression", tuned.params, None)
    assert prices["hist_gradient_boosting_tuned"] == pytest.approx(0.2 + SEARCH_COST * 1e-5 * rows * features)
    # an unsized forest refit on train + validation grows forest_size(training rows) trees, as
    # refit_on_train_and_val sizes it (make_pipeline(rows=len(train)))
    small = nominal_candidate_seconds("random_forest", 20_500, 10, None, {}, sized_rows=19_000)
    assert forest_size(19_000) == 300 and small == pytest.approx(1.0 + 3e-4 * 20_500 * 300 / 100)


def test_the_ensemble_refit_is_priced_at_its_members_fits_and_each_member_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A budget whose REFIT_SHARE holds the members' refit at their defaults but not at the search's
    cost: the ensemble is refit (before the fix it shipped fit on the training split)."""
    # the price is the subject here: no member is left out for its size (test_ensemble_heavy_member.py)
    monkeypatch.setattr(ensemble_candidate_module, "DEPLOY_SECONDS_PER_MB", 0.0)
    schema, train, rest, y = split(*TITANIC)
    val_frame = rest.sample(frac=0.5, random_state=SEED)
    val = (to_model_frame(val_frame, schema), val_frame["target"].to_numpy())
    fit_train = (to_model_frame(train, schema), y)
    board = [
        fit_candidate(name, schema, fit_train, val, "accuracy", SEED, tmp_path / "models")
        for name in ("dummy", "linear", "random_forest", "lightgbm")
    ]
    free, plan = ensemble_candidate(
        board, "classification", "accuracy", val[1], False, fit_train, val, SEED, tmp_path / "e0"
    )
    assert free is not None and plan.selection is not None
    members = {m.name for m in free.members}
    assert len(members) >= 2
    # with replacement: one member is picked several times, and listed (and priced) once
    assert max(plan.selection.counts) > 1 and len(plan.selection.names) == len(members)
    rows = len(y) + len(val[1])
    features_out = 10  # any count: the price and the rule read the same one
    by_name = {c.name: c for c in board}
    at_defaults = sum(
        nominal_candidate_seconds(
            by_name[n].base or n, rows, features_out, 2, by_name[n].params, sized_rows=len(y)
        )
        for n in plan.selection.names
    )
    budget = at_defaults / REFIT_SHARE  # the defaults' price fits exactly; SEARCH_COST's would not
    candidate, priced = ensemble_candidate(
        board,
        "classification",
        "accuracy",
        val[1],
        False,
        fit_train,
        val,
        SEED,
        tmp_path / "e1",
        budget=budget,
        features_out=features_out,
        classes=2,
    )
    assert candidate is not None
    assert candidate.refit_rule is None, candidate.refit_rule
    assert candidate.refit_nominal_seconds == pytest.approx(at_defaults, abs=1e-3)
    assert f"costs {at_defaults:.1f} s by the nominal rule" in priced.reason
    assert "it is refit" in priced.reason
    for name in plan.selection.names:
        assert priced.reason.count(f"{name} ") >= 1
