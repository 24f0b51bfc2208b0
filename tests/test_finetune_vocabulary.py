"""`--from` a released text network on new text: the new training tokens its vocabulary misses are
measured (against a vocabulary learnt from the same rows), recorded in the decisions and the memory
findings, and the rule (tools/data/text.py's VOCABULARY_EXCESS_LIMIT) decides the vocabulary the run
reads the text with: the release's (it is fine-tuned) or, past the limit, the new rows' own (the
models from scratch, which learn it, are the comparison)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import CLI
from shared_release import TextRelease

from ml_expert.registry import Registry
from ml_expert.tools.data.prepare import TARGET_COLUMN, prepare_data
from ml_expert.tools.data.privacy import MIN_CATEGORY_COUNT
from ml_expert.tools.data.text import VOCABULARY_EXCESS_LIMIT

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ is not an installed package

from benchmarks.vocabulary_shift import NEW_SUBJECTS, SUBJECTS, reviews  # noqa: E402


def _unique_reviews(n: int, seed: int, subjects: list[str]) -> pd.DataFrame:
    """Reviews without repeated rows (preparation drops duplicates before the split)."""
    return reviews(n, seed, subjects).drop_duplicates().reset_index(drop=True)


def _tokens(text: str) -> list[str]:
    # the reviews hold letters, spaces and a final "." only
    return re.sub(r"[^a-z ]", "", text.lower()).split()


def _shares(texts: pd.Series, release: list[str]) -> tuple[int, int, int]:
    """(tokens, unknown to `release`, unknown to a vocabulary learnt from `texts`), counted here:
    a word on >= MIN_CATEGORY_COUNT rows and on at most 95 % of them enters the vocabulary."""
    rows = [_tokens(t) for t in texts]
    on_rows = Counter(w for row in rows for w in set(row))
    own = {w for w, n in on_rows.items() if MIN_CATEGORY_COUNT <= n <= 0.95 * len(rows)}
    flat = [w for row in rows for w in row]
    return len(flat), sum(w not in set(release) for w in flat), sum(w not in own for w in flat)


def _training_texts(prepared_train: str, source: Path) -> pd.Series:
    """The raw texts of the training split's rows (the split keeps the file's row index)."""
    index = pd.read_parquet(prepared_train).index
    return pd.read_csv(source).loc[index, "review"]


def test_the_release_vocabulary_is_measured_on_training_tokens_and_adopted_within_the_limit(
    tmp_path: Path,
) -> None:
    """No run: preparation alone, against a release's schema. A few rows about a new subject stay
    within the limit (the release's words and ids are adopted); reviews about 8 new subjects do not."""
    first, few, many = tmp_path / "first.csv", tmp_path / "few.csv", tmp_path / "many.csv"
    _unique_reviews(600, 0, SUBJECTS).to_csv(first, index=False)
    released = prepare_data(str(first), "verdict", 0, tmp_path / "v1", modality="text").input_schema
    vocabulary = released.vocabularies["review"]
    assert "pool" not in vocabulary and "food" in vocabulary
    shifted = _unique_reviews(400, 1, SUBJECTS)
    shifted.loc[:39, "review"] = shifted.loc[:39, "review"].str.replace(
        r"the (\w+) was", "the pool was", n=1, regex=True
    )
    shifted.to_csv(few, index=False)
    _unique_reviews(400, 2, NEW_SUBJECTS).to_csv(many, index=False)

    for source, adopted in ((few, True), (many, False)):
        prepared = prepare_data(
            str(source), "verdict", 0, tmp_path / source.stem, modality="text",
            released=released, released_name="v1",
        )  # fmt: skip
        check = prepared.vocabulary_check
        assert check is not None and check.parent == "v1" and check.adopted is adopted
        (share,) = check.columns
        tokens, unknown, unknown_own = _shares(_training_texts(prepared.files["train"], source), vocabulary)
        counted = (share.tokens, share.unknown_to_release, share.unknown_to_own)
        assert counted == (tokens, unknown, unknown_own)
        assert share.excess > 0 and (share.excess <= VOCABULARY_EXCESS_LIMIT) is adopted
        schema = prepared.input_schema
        if adopted:  # read as the release reads it: its words, its ids, its length
            assert schema.vocabularies["review"] == vocabulary
            assert [c.key for c in schema.columns] == [c.key for c in released.columns]
            assert "test_released" not in prepared.files
        else:  # its own vocabulary, with the new subjects in it; the test rows also as v1 reads them
            assert "pool" in schema.vocabularies["review"]
            as_released = pd.read_parquet(prepared.files["test_released"])
            assert list(as_released.columns) == [*released.keys, TARGET_COLUMN]
            assert as_released.index.equals(pd.read_parquet(prepared.files["test"]).index)


@pytest.fixture(scope="module")
def text_network(text_release: TextRelease) -> dict:
    """v1: a text CNN on reviews of 8 subjects (word order decides the label: the network ships),
    the suite's shared release (tests/shared_release.py); `_from_v1` runs on a copy of its workspace."""
    assert text_release.summary["chosen_model"] == "dnn", text_release.summary.get("reason")
    return {"root": text_release.root, "ws": text_release.workspace, "v1": text_release.summary}


def _recorded(run_dir: Path, key: str) -> dict:
    finding = json.loads((run_dir / "findings" / f"{key}.json").read_text())
    return finding.get("value", finding)


def _from_v1(text_network: dict, data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """`--from production` on a copy of the workspace whose production is v1; (workspace, run dir).
    Exit 0 (released) or 5 (the release gate refused it: v1 scored better on the new test rows)."""
    ws = tmp_path / "ws"
    shutil.copytree(text_network["ws"], ws)
    v1 = Registry(ws).show("production")
    assert v1["version"] == "v1" and v1["source"]["kind"] == "keras"
    proc = subprocess.run(
        [*CLI, "run", str(data), "--target", "verdict", "--json", "--workspace", str(ws)]
        + ["--memory", "embedded", "--budget", "60", "--seed", "2", "--no-dnn", "--from", "production"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode in (0, 5), proc.stdout[-2000:] + proc.stderr[-3000:]
    return ws, Path(json.loads(proc.stdout)["run_dir"])


def _release_vocabulary(ws: Path) -> list[str]:
    v1 = Registry(ws).show("v1")
    return json.loads((Path(v1["path"]) / "schema.json").read_text())["vocabularies"]["review"]


def _compared_with_v1_on_the_new_test_rows(run_dir: Path) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    (check,) = [c for c in run["gates"]["release"]["checks"] if c["name"] == "not_worse_than_production"]
    production = _recorded(run_dir, "metrics")["production_on_test"]
    assert production["version"] == "v1" and "on the same new test rows" in check["detail"], check
    assert check["threshold"] == production["test_score"]
    assert check["passed"] is (check["value"] >= production["test_score"]), check


def test_a_few_new_words_fine_tune_the_network_on_its_vocabulary(text_network: dict, tmp_path: Path) -> None:
    """40 of 400 reviews about a new subject (the "pool"): within the limit, the run reads the text
    with v1's words and ids, and the text CNN is fine-tuned on them (before: exit 2, "read
    differently"); the share of unknown tokens is recorded with the value counted here."""
    few = tmp_path / "few.csv"
    shifted = _unique_reviews(400, 4, SUBJECTS)
    shifted.loc[:39, "review"] = shifted.loc[:39, "review"].str.replace(
        r"the (\w+) was", "the pool was", n=1, regex=True
    )
    shifted.to_csv(few, index=False)
    ws, run_dir = _from_v1(text_network, few, tmp_path)
    release = _release_vocabulary(ws)
    tokens, unknown, unknown_own = _shares(
        _training_texts(str(run_dir / "data" / "train.parquet"), few), release
    )
    assert 0 < (unknown - unknown_own) / tokens <= VOCABULARY_EXCESS_LIMIT

    check = _recorded(run_dir, "data-analysis")["vocabulary_check"]
    (share,) = check["columns"]
    counted = (share["tokens"], share["unknown_to_release"], share["unknown_to_own"])
    assert counted == (tokens, unknown, unknown_own) and check["adopted"] is True
    decisions = {
        d["decision"]: d["reason"] for d in json.loads((run_dir / "run.json").read_text())["decisions"]
    }
    read = "read the text with v1's vocabulary: new training tokens unknown to it "
    assert any(d.startswith(f"{read}'review' {unknown / tokens:.1%}") for d in decisions), list(decisions)
    said = next(d for d in decisions if d.startswith("fine-tune dnn from v1 on its vocabulary"))
    assert f"{unknown} of {tokens} new training tokens unknown to it" in said
    assert json.loads((run_dir / "data" / "schema.json").read_text())["vocabularies"]["review"] == release

    training = _recorded(run_dir, "training")
    assert training["fine_tuning"]["vocabulary_check"]["adopted"] is True
    board = {c["name"]: c for c in training["leaderboard"]}
    assert board["fine_tuned"]["kind"] == "keras" and "continued" in board["fine_tuned"]["detail"]
    _compared_with_v1_on_the_new_test_rows(run_dir)


def test_many_new_words_extend_the_network_vocabulary_and_it_competes(
    text_network: dict, tmp_path: Path
) -> None:
    """Reviews of 8 new subjects, `--from production` (a text CNN): the share of the new training
    tokens unknown to v1's vocabulary is recorded (decision, data finding, fine-tuning record) with
    the value counted here; past the limit v1's vocabulary is extended by the new rows' words
    (appended after its ids: before, v1 was no candidate), its network fine-tuned and a candidate
    beside the models from scratch, and the release gate scores v1 on the same new test rows (read
    with its own vocabulary). Whatever wins ships with the extended vocabulary."""
    second = tmp_path / "second.csv"
    _unique_reviews(400, 3, NEW_SUBJECTS).to_csv(second, index=False)
    ws, run_dir = _from_v1(text_network, second, tmp_path)
    release = _release_vocabulary(ws)
    texts = _training_texts(str(run_dir / "data" / "train.parquet"), second)
    tokens, unknown, unknown_own = _shares(texts, release)
    assert (unknown - unknown_own) / tokens > VOCABULARY_EXCESS_LIMIT
    on_rows = Counter(w for t in texts for w in set(_tokens(t)))
    new_words = {w for w, n in on_rows.items() if MIN_CATEGORY_COUNT <= n <= 0.95 * len(texts)} - set(release)

    check = _recorded(run_dir, "data-analysis")["vocabulary_check"]
    (share,) = check["columns"]
    counted = (share["tokens"], share["unknown_to_release"], share["unknown_to_own"])
    assert counted == (tokens, unknown, unknown_own)
    assert check["parent"] == "v1" and check["adopted"] is False
    (extension,) = check["extensions"]
    assert (extension["release_size"], extension["added"]) == (len(release), len(new_words))
    vocabulary = json.loads((run_dir / "data" / "schema.json").read_text())["vocabularies"]["review"]
    assert vocabulary[: len(release)] == release and set(vocabulary[len(release) :]) == new_words
    assert "pool" in new_words
    decisions = {
        d["decision"]: d["reason"] for d in json.loads((run_dir / "run.json").read_text())["decisions"]
    }
    said = next(d for d in decisions if d.startswith("extend v1's vocabulary with the new rows' words"))
    grown = f"{len(release)} words + {len(new_words)} new = {len(vocabulary)}"
    assert grown in said and f"'review' {unknown / tokens:.1%}" in said, said
    assert f"{unknown} of {tokens} training tokens" in decisions[said]
    assert f"add {len(new_words)} embedding rows to v1's network for its extended vocabulary" in decisions
    assert "do not fine-tune dnn from v1" not in decisions

    training = _recorded(run_dir, "training")
    fine_tuning = training["fine_tuning"]
    assert fine_tuning["vocabulary"] == "extended"
    assert fine_tuning["vocabulary_check"]["columns"][0]["unknown_to_release"] == unknown
    board = {c["name"]: c for c in training["leaderboard"]}
    assert "released" not in board  # as released it has no embedding row for the new ids
    tuned = board["fine_tuned"]
    detail = f"v1 (vocabulary {len(release)} + {len(new_words)} = {len(vocabulary)} words) continued"
    assert tuned["kind"] == "keras" and tuned["detail"].startswith(detail), tuned["detail"]
    assert any(c.get("parent") is None for c in board.values())  # the models from scratch compete
    _compared_with_v1_on_the_new_test_rows(run_dir)
    if training["chosen"]["name"] == "fine_tuned":  # its package reads the text with the extension
        deployment = _recorded(run_dir, "deployment")
        shipped = [e for e in deployment["exports"] if e["shipped"]]
        assert shipped and all(e["passed"] for e in shipped), deployment["exports"]
        package = json.loads((Path(deployment["package_dir"]) / "schema.json").read_text())
        assert package["vocabularies"]["review"] == vocabulary
