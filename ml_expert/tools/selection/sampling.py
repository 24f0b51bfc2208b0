"""Fit the candidates on a seeded sample of the training rows when even the cheapest is long for
the budget (FLAML's answer to a large file with a small budget).

On 3M rows with `--budget 20` every candidate but the dummy cost more than the budget by the
nominal count rule (the cheapest, the linear model, about 44 s), the time cap stopped them all and
the run ended with nothing to ship (#17). The rule here is the long-fit rule's own threshold
(longfit.LONG_FIT_SHARE, no second one): when the cheapest non-dummy candidate's nominal cost at
all training rows is above that share of the budget, the candidates are fit on a sample whose size
is found by bisection so that the cheapest one's nominal cost is within the share. The sample is
stratified by class for classification (at least SAMPLE_MIN_PER_CLASS rows of each class, or all of a
smaller class), drawn by a generator seeded with the run's seed (the same seed: the same rows),
and never smaller than SAMPLE_FLOOR rows: when even that is too costly, no sample is drawn and the
rule's figures go into the refusal the time cap leads to. Validation is scored on the same
fraction of its rows, at least VAL_FLOOR (or all of them).

Counts only (the nominal rule), never the clock: a seeded run draws the same sample on any machine.
Pure: no file is read or written here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from ml_expert.tools.selection.longfit import LONG_FIT_SHARE, NEVER_STOPPED

SAMPLE_FLOOR = 10_000
"""The fewest training rows a sample may have: below it the candidates would be judged on too
little to tell apart, and the budget is too small for the data (the run says so)."""
VAL_FLOOR = 10_000
"""The fewest validation rows the sampled candidates are scored on (all of them when fewer)."""
SAMPLE_MIN_PER_CLASS = 10
"""Rows of each class a stratified sample keeps at least (all of a class with fewer)."""

Price = Callable[[int], tuple[str, float]]
"""rows -> (the cheapest non-dummy candidate, its nominal seconds) when fit on that many rows."""


class TrainingSample(BaseModel):
    """The sample the candidates were fit on (selection's `sample`), with the rule that sized it."""

    model_config = ConfigDict(extra="forbid")

    train_rows: int  # training rows the candidates were fit on
    train_total: int  # training rows in the split
    val_rows: int  # validation rows they were scored on
    val_total: int
    seed: int
    stratified: bool  # by class (classification)
    cheapest: str  # the candidate the rule sizes the sample by
    cheapest_seconds_all: float  # its nominal cost at all training rows
    cheapest_seconds_sample: float  # ... and at the sample's
    limit_seconds: float  # LONG_FIT_SHARE x budget
    budget: float
    rule: str

    @property
    def words(self) -> str:
        """How the report and the decisions say it."""
        return f"Fit on {self.train_rows:,} of {self.train_total:,} training rows"


class SamplePlan(BaseModel):
    """What the rule decided: `sample` set when the candidates are fit on a sample; `fired` when the
    cheapest candidate is long for the budget at all rows (with or without a sample, `rule` says)."""

    model_config = ConfigDict(extra="forbid")

    fired: bool
    sample_rows: int | None = None  # the sample's size (before stratification's rounding)
    cheapest: str
    cheapest_seconds_all: float
    cheapest_seconds_sample: float | None = None
    limit_seconds: float
    rule: str


def plan_sample(price: Price, total_rows: int, budget: float | None) -> SamplePlan | None:
    """The sample's size by the rule (module docstring), or None when there is no budget to size by.

    `price(rows)`: the cheapest non-dummy candidate and its nominal cost on `rows` training rows
    (nondecreasing in rows); the size is the largest row count in [SAMPLE_FLOOR, total_rows) whose
    cost is within LONG_FIT_SHARE of the budget, found by bisection."""
    if budget is None or total_rows <= 0:
        return None
    limit = LONG_FIT_SHARE * budget
    name, full = price(total_rows)
    within = f"{LONG_FIT_SHARE:.0%} of the {budget:g} s budget = {limit:.2f} s"
    if full <= limit:
        return SamplePlan(
            fired=False,
            cheapest=name,
            cheapest_seconds_all=round(full, 3),
            limit_seconds=limit,
            rule=f"the cheapest candidate ({name}) costs {full:.2f} s by the nominal rule on all "
            f"{total_rows:,} training rows <= {within}: fit on all rows",
        )
    head = (
        f"the cheapest candidate ({name}) costs {full:.1f} s by the nominal rule on all {total_rows:,} "
        f"training rows > {within}"
    )

    def fired(cost: float, rule: str, rows: int | None = None) -> SamplePlan:
        return SamplePlan(
            fired=True,
            sample_rows=rows,
            cheapest=name,
            cheapest_seconds_all=round(full, 3),
            cheapest_seconds_sample=round(cost, 3),
            limit_seconds=limit,
            rule=rule,
        )

    floor_cost = price(min(SAMPLE_FLOOR, total_rows))[1]
    if total_rows <= SAMPLE_FLOOR or floor_cost > limit:
        return fired(
            floor_cost,
            f"{head}, and a sample cannot help: "
            + (
                f"there are no more than the {SAMPLE_FLOOR:,}-row floor"
                if total_rows <= SAMPLE_FLOOR
                else f"even the {SAMPLE_FLOOR:,}-row floor costs {floor_cost:.1f} s > {limit:.2f} s"
            ),
        )
    low, high = SAMPLE_FLOOR, total_rows - 1  # price(low) <= limit < price(total_rows)
    while low < high:
        middle = (low + high + 1) // 2
        if price(middle)[1] <= limit:
            low = middle
        else:
            high = middle - 1
    cheapest_there, cost = price(low)  # the cheapest may differ at the sample's size
    return fired(
        cost,
        f"{head}: the candidates are fit on a seeded sample of {low:,} rows, the most (by bisection, at "
        f"least {SAMPLE_FLOOR:,}) at which the cheapest ({cheapest_there}) costs {cost:.2f} s <= "
        f"{limit:.2f} s",
        rows=low,
    )


def draw(y: np.ndarray, size: int, seed: int, stratified: bool, stream: int = 0) -> np.ndarray:
    """Sorted row positions of a seeded sample of `size` of `y`'s rows (all of them when size >=
    len(y)). Stratified: each class keeps its share (largest remainders), at least SAMPLE_MIN_PER_CLASS
    rows (all of a smaller class). `stream` tells apart samples drawn with one seed (train, val)."""
    total = len(y)
    if size >= total:
        return np.arange(total)
    rng = np.random.default_rng([seed, stream])
    if not stratified:
        return np.sort(rng.choice(total, size=size, replace=False))
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    exact = size * counts / total
    take = np.floor(exact).astype(int)
    short = size - int(take.sum())
    if short > 0:  # largest remainders, ties to the earlier class
        order = np.argsort(-(exact - take), kind="stable")
        take[order[:short]] += 1
    take = np.minimum(np.maximum(take, np.minimum(counts, SAMPLE_MIN_PER_CLASS)), counts)
    picked = []
    for k in range(len(classes)):
        rows = np.flatnonzero(codes == k)
        picked.append(rows[rng.permutation(len(rows))[: take[k]]])
    return np.sort(np.concatenate(picked))


def val_size(sample_rows: int, train_total: int, val_total: int) -> int:
    """Validation rows to score on: the training sample's fraction of them, at least VAL_FLOOR (or all)."""
    share = math.ceil(val_total * sample_rows / max(train_total, 1))
    return min(val_total, max(VAL_FLOOR, share))


def take(split: tuple[Any, np.ndarray], rows: np.ndarray) -> tuple[Any, np.ndarray]:
    """The split's (frame, target) at `rows` (positions), the frame's index reset."""
    frame, y = split
    if len(rows) == len(y):
        return split
    return frame.iloc[rows].reset_index(drop=True), y[rows]


def sample_splits(
    plan: SamplePlan,
    train: tuple[Any, np.ndarray],
    val: tuple[Any, np.ndarray],
    seed: int,
    classification: bool,
    budget: float,
) -> tuple[tuple[Any, np.ndarray], tuple[Any, np.ndarray], TrainingSample]:
    """Train and validation cut to the plan's sample (plan.sample_rows must be set), and its record."""
    assert plan.sample_rows is not None
    train_rows = draw(train[1], plan.sample_rows, seed, classification, stream=0)
    val_total = len(val[1])
    val_n = val_size(len(train_rows), len(train[1]), val_total)
    val_rows = draw(val[1], val_n, seed, classification, stream=1)
    record = TrainingSample(
        train_rows=len(train_rows),
        train_total=len(train[1]),
        val_rows=len(val_rows),
        val_total=val_total,
        seed=seed,
        stratified=classification,
        cheapest=plan.cheapest,
        cheapest_seconds_all=plan.cheapest_seconds_all,
        cheapest_seconds_sample=plan.cheapest_seconds_sample or 0.0,
        limit_seconds=plan.limit_seconds,
        budget=budget,
        rule=plan.rule
        + f"; validation scored on {len(val_rows):,} of {val_total:,} rows (the same fraction, at least "
        f"{VAL_FLOOR:,} or all)" + ("; stratified by class" if classification else "") + f"; seed {seed}",
    )
    return take(train, train_rows), take(val, val_rows), record


def cheapest_price(
    names: Sequence[str],
    features_out: int,
    classes: int | None,
    budget: float,
    sized: Callable[[str, int], dict[str, Any]] | None = None,
) -> Price:
    """The Price of the candidates `names` (the dummy aside), each priced the way it would be fit on
    that many rows (longfit.nominal_candidate_seconds; `sized(base, rows)`: its params, a forest
    sized by its share of the budget)."""
    from ml_expert.tools.selection.longfit import nominal_candidate_seconds

    bases = [n for n in names if n not in NEVER_STOPPED]

    def price(rows: int) -> tuple[str, float]:
        costs = {
            base: nominal_candidate_seconds(
                base, rows, features_out, classes, sized(base, rows) if sized else None
            )
            for base in bases
        }
        name = min(costs, key=lambda b: costs[b])
        return name, costs[name]

    return price
