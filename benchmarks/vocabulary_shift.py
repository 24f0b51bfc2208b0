"""How many of a new sample's words a released vocabulary misses, beyond what any vocabulary misses:
the evidence behind VOCABULARY_EXCESS_LIMIT (ml_expert/tools/data/text.py), the rule that decides
whether a `--from` run reads a text column with the release's vocabulary (not a timed test).

    python benchmarks/vocabulary_shift.py [--seeds 5]

For each seed, a release's vocabulary is learnt from one sample and a second sample's training
tokens (70 % of its rows) are counted against it and against a vocabulary learnt from those rows by
the same rule (words on >= 5 rows; at most 200 words for bag-of-words, 2,000 for a sequence model).
Samples: titanic's `name` column cut into two random halves (the same text), and the reviews of
tests/test_text_sequence.py about 8 subjects, then a second sample about the same 8 subjects, 4 of
them new, or 8 new ones. For the sequence vocabulary (a text network's embedding), also the words
extending it would append (the run's own rule's words the release lacks) and whether
VOCABULARY_EXTENSION_MAX_FACTOR allows it. Token counts only: no model is trained here, so the
scores of an extended release against the models from scratch are not measured by this script.
Results: benchmarks/results/vocabulary_shift.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml_expert.tools.data.text import (  # noqa: E402
    MAX_WORDS,
    SEQUENCE_MAX_WORDS,
    VOCABULARY_EXCESS_LIMIT,
    VOCABULARY_EXTENSION_MAX_FACTOR,
    extended_vocabulary,
    fit_vocabulary,
    token_share,
    vocabulary_extension,
)

SUBJECTS = ["food", "service", "room", "staff", "view", "price", "music", "coffee"]
NEW_SUBJECTS = ["pool", "bed", "wifi", "breakfast", "parking", "lobby", "garden", "dessert"]
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def reviews(n: int, seed: int, subjects: list[str] = SUBJECTS) -> pd.DataFrame:
    """Two clauses about two of `subjects`, exactly one negated; the label is what the first means
    (tests/test_text_sequence.py's reviews, about any subjects)."""
    rng = np.random.default_rng(seed)
    adverbs = ["", "really ", "very ", "quite ", "truly "]
    openers = ["", "honestly ", "overall ", "well "]
    rows = []
    for _ in range(n):
        a1, a2 = rng.choice(["good", "bad"], 2)
        negate_first = bool(rng.integers(0, 2))

        def clause(noun: str, adj: str, negated: bool) -> str:
            return f"the {noun} was {'not ' if negated else ''}{rng.choice(adverbs)}{adj}"

        n1, n2 = rng.choice(subjects, 2, replace=False)
        text = f"{rng.choice(openers)}{clause(n1, a1, negate_first)} and {clause(n2, a2, not negate_first)}"
        liked = (a1 == "good") != negate_first
        rows.append({"review": text.capitalize() + ".", "verdict": "liked" if liked else "disliked"})
    return pd.DataFrame(rows)


def excess(first: pd.Series, second: pd.Series, max_words: int, seed: int) -> dict[str, float | int | bool]:
    release = fit_vocabulary(first, max_words=max_words)
    train = second.sample(frac=0.7, random_state=seed)
    own = fit_vocabulary(train, max_words=max_words)
    share = token_share("text", train, release, own)
    out: dict[str, float | int | bool] = {
        "release": round(share.release_share, 4),
        "own": round(share.own_share, 4),
        "excess": round(share.excess, 4),
    }
    if max_words == SEQUENCE_MAX_WORDS:  # a text network's vocabulary: what extending it would add
        added = len(extended_vocabulary(release, own)) - len(release)
        out.update(
            release_words=len(release),
            added=added,
            extension_allowed=vocabulary_extension("text", release, own) is not None,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    names = pd.read_csv(DATASETS / "titanic.csv")["name"]
    out: dict[str, dict[str, list[dict[str, float | int | bool]]]] = {}
    for seed in range(args.seeds):
        shuffled = names.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        half = len(shuffled) // 2
        pairs = {
            "titanic names, two random halves": (shuffled[:half], shuffled[half:]),
            "reviews, same 8 subjects": (reviews(1200, seed)["review"], reviews(600, seed + 100)["review"]),
            "reviews, 4 of 8 subjects new": (
                reviews(1200, seed)["review"],
                reviews(600, seed + 100, SUBJECTS[:4] + NEW_SUBJECTS[:4])["review"],
            ),
            "reviews, 8 new subjects": (
                reviews(1200, seed)["review"],
                reviews(600, seed + 100, NEW_SUBJECTS)["review"],
            ),
        }
        for name, (first, second) in pairs.items():
            for kind, cap in (("bag of words", MAX_WORDS), ("sequence", SEQUENCE_MAX_WORDS)):
                out.setdefault(name, {}).setdefault(kind, []).append(excess(first, second, cap, seed))
    summary = {
        name: {
            kind: {"max_excess": max(r["excess"] for r in rows), "runs": rows} for kind, rows in kinds.items()
        }
        for name, kinds in out.items()
    }
    for name, kinds in summary.items():
        print(name, {k: v["max_excess"] for k, v in kinds.items()})
        runs = kinds["sequence"]["runs"]
        for key in ("release_words", "added", "extension_allowed"):
            print(f"  sequence {key}:", sorted({r[key] for r in runs}))
    print("limit", VOCABULARY_EXCESS_LIMIT, "extension factor", VOCABULARY_EXTENSION_MAX_FACTOR)
    results = Path(__file__).resolve().parent / "results" / "vocabulary_shift.json"
    results.write_text(
        json.dumps(
            {
                "limit": VOCABULARY_EXCESS_LIMIT,
                "extension_max_factor": VOCABULARY_EXTENSION_MAX_FACTOR,
                "samples": summary,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
