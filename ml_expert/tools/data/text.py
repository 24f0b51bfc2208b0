"""Free-text columns as words: one tokenizer, a vocabulary fit on training rows, bag-of-words features.

The tokenizer is the one Keras' `TextVectorization` applies by default (lower case, strip ASCII
punctuation, split on whitespace), written in plain Python so the self-contained serving runtime
(`runtime/inference.py`) can mirror it line for line. A word enters the vocabulary only when it
appears on at least `MIN_CATEGORY_COUNT` training rows, the same rule that keeps a rare category
out of every artifact: a surname seen on one row is that passenger's data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from ml_expert.tools.data.privacy import MIN_CATEGORY_COUNT

# Keras TextVectorization's default standardisation strips exactly these characters.
PUNCTUATION = re.compile(r"[!\"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~']")
# A string column is free text when its values hold this many words on average ...
TEXT_MIN_MEAN_WORDS = 2.5
# ... and it has more distinct values than a categorical column may keep as one-hot columns.
TEXT_MIN_DISTINCT = 30
# At most this many words per text column become features (most frequent first).
MAX_WORDS = 200
# A word on more than this share of the training rows says nothing about any row.
MAX_ROW_SHARE = 0.95


def _missing(value: Any) -> bool:
    """None, NaN, pandas NA/NaT: no text (never the word "nan" or "na")."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float) and value != value


def words(value: Any) -> list[str]:
    """Lower-cased words of a text without ASCII punctuation; [] for a missing value."""
    if _missing(value):
        return []
    return PUNCTUATION.sub("", str(value).lower()).split()


def text_figures(values: Iterable[Any]) -> dict[str, float]:
    """Mean words per non-missing value and distinct values: the figures the text rule reads."""
    texts = [str(v) for v in values if not _missing(v)]
    if not texts:
        return {"mean_words": 0.0, "distinct": 0}
    return {"mean_words": sum(len(words(t)) for t in texts) / len(texts), "distinct": len(set(texts))}


def is_text(values: Iterable[Any]) -> bool:
    figures = text_figures(values)
    return figures["mean_words"] >= TEXT_MIN_MEAN_WORDS and figures["distinct"] > TEXT_MIN_DISTINCT


def fit_vocabulary(
    values: Iterable[Any], min_rows: int = MIN_CATEGORY_COUNT, max_words: int = MAX_WORDS
) -> list[str]:
    """Words on >= min_rows training rows (and not on nearly all), most frequent first, ties A-Z."""
    rows = [set(words(v)) for v in values]
    counts = Counter(w for row in rows for w in row)
    ceiling = MAX_ROW_SHARE * len(rows)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [w for w, n in ranked if min_rows <= n <= ceiling][:max_words]


# The sequence model's vocabulary and length: ids fit float16 exactly (< 2048) under mixed precision.
SEQUENCE_MAX_WORDS = 2000
MAX_SEQUENCE_LENGTH = 64
MIN_SEQUENCE_LENGTH = 4
PAD, OUT_OF_VOCABULARY = 0, 1


def sequence_length(values: Iterable[Any]) -> int:
    """Words kept per text: the 95th percentile of the training texts' lengths, within [4, 64]."""
    lengths = sorted(len(words(v)) for v in values)
    if not lengths:
        return MIN_SEQUENCE_LENGTH
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    return max(MIN_SEQUENCE_LENGTH, min(MAX_SEQUENCE_LENGTH, p95))


def token_ids(value: Any, index: dict[str, int], length: int) -> list[int]:
    """TextVectorization's integer output for a fixed vocabulary: word i of the vocabulary is i + 2,
    an unknown word 1, padding 0 at the end; longer texts keep their first `length` words."""
    ids = [index.get(w, OUT_OF_VOCABULARY) for w in words(value)[:length]]
    return ids + [PAD] * (length - len(ids))


def vocabulary_index(vocabulary: list[str]) -> dict[str, int]:
    return {w: i + 2 for i, w in enumerate(vocabulary)}


# --from: a released model reads a text column with the vocabulary it was trained on. The new
# training rows' words it lacks are unknown to it (one id, or no bag-of-words feature). Every
# vocabulary leaves some words out (a word on fewer than MIN_CATEGORY_COUNT rows never enters one),
# so what the release misses is measured against what a vocabulary learnt from the same rows misses.
VOCABULARY_EXCESS_LIMIT = 0.05
"""Largest excess out-of-vocabulary share (the release's minus the new rows' own vocabulary's, as
shares of the training tokens) at which the run reads a text column with the release's vocabulary.
Measured (benchmarks/vocabulary_shift.py, seeds 0-4, both the bag-of-words and the sequence caps):
two samples of the same text give an excess of -0.019 to 0.0 (titanic's names, two random halves)
and 0.0 (reviews of the same 8 subjects); a second sample of reviews with 4 of its 8 subjects new
gives 0.079-0.083, with 8 new 0.16. 0.05 lies between sampling noise and the smallest shift measured."""


class TokenShare(BaseModel):
    """One text column's training tokens, and how many of them each vocabulary does not hold."""

    column: str
    tokens: int  # every word of every training row's text (not only the first `length`)
    unknown_to_release: int
    unknown_to_own: int  # what a vocabulary learnt from these rows by the run's rule misses
    release_vocabulary: int
    own_vocabulary: int

    @property
    def release_share(self) -> float:
        return self.unknown_to_release / self.tokens if self.tokens else 0.0

    @property
    def own_share(self) -> float:
        return self.unknown_to_own / self.tokens if self.tokens else 0.0

    @property
    def excess(self) -> float:
        return self.release_share - self.own_share

    def describe(self, parent: str) -> str:
        return (
            f"{self.column!r}: {self.unknown_to_release} of {self.tokens} training tokens "
            f"({self.release_share:.1%}) are not in {parent}'s {self.release_vocabulary}-word vocabulary; "
            f"a vocabulary learnt from the new training rows ({self.own_vocabulary} words) misses "
            f"{self.unknown_to_own} ({self.own_share:.1%}): excess {self.excess:.1%}"
        )


def token_share(column: str, values: Iterable[Any], release: list[str], own: list[str]) -> TokenShare:
    """Tokens of `values` (the training split's texts) unknown to each vocabulary."""
    released, learnt = set(release), set(own)
    tokens = unknown_release = unknown_own = 0
    for value in values:
        for word in words(value):
            tokens += 1
            unknown_release += word not in released
            unknown_own += word not in learnt
    return TokenShare(
        column=column, tokens=tokens, unknown_to_release=unknown_release, unknown_to_own=unknown_own,
        release_vocabulary=len(release), own_vocabulary=len(own),
    )  # fmt: skip


def extended_vocabulary(release: list[str], own: list[str]) -> list[str]:
    """The release's vocabulary with the words the run's own rule keeps that it lacks appended, in
    the run's order: every word the release knows keeps its id (token_ids: word i is i + 2)."""
    known = set(release)
    return [*release, *(w for w in own if w not in known)]


VOCABULARY_EXTENSION_MAX_FACTOR = 2.0
"""Largest extended/released vocabulary size at which a released text network is extended rather
than left out. The appended words start from freshly drawn embedding rows and learn at the
fine-tuning learning rate (FINETUNE_LR_FACTOR, a tenth of the network's); once they would outnumber
the words the network was trained on, most of its vocabulary is untrained and a network from
scratch, at the full rate, is the better start. A count, not a score: the network's own size
decides, whatever the data. The extended size also stays within SEQUENCE_MAX_WORDS (ids exact in
float16). Counted (benchmarks/vocabulary_shift.py, seeds 0-4): reviews of 8 new subjects add 8
words to a 17-word vocabulary (x 1.47), 4 new subjects 4; two halves of titanic's names add 6-11
to 51-58 (within the excess limit, so adopted there, not extended)."""


class VocabularyExtension(BaseModel):
    """--from a text network past VOCABULARY_EXCESS_LIMIT: its sequence vocabulary extended by the
    new training rows' words (the run's own rule), appended after its ids."""

    column: str
    release_size: int
    added: int  # words the run's rule keeps that the release lacks, appended in the run's order
    size: int  # release_size + added: the extended vocabulary the run (and its package) reads with
    first_added: list[str]  # the most frequent of them, for the record (each on >= MIN_CATEGORY_COUNT rows)

    def describe(self, parent: str) -> str:
        more = ", ..." if self.added > len(self.first_added) else ""
        return (
            f"{self.column!r}: {parent}'s {self.release_size}-word vocabulary extended by {self.added} "
            f"words of the new training rows ({', '.join(self.first_added)}{more})"
            f" to {self.size}, appended after its ids; their embedding rows are new, every other weight "
            "is as released"
        )


def vocabulary_extension(column: str, release: list[str], own: list[str]) -> VocabularyExtension | None:
    """The extension of `release` by `own`'s new words, or None where the rule refuses it (the
    extended vocabulary more than VOCABULARY_EXTENSION_MAX_FACTOR x the release's, or over
    SEQUENCE_MAX_WORDS)."""
    added = extended_vocabulary(release, own)[len(release) :]
    size = len(release) + len(added)
    if not release or size > VOCABULARY_EXTENSION_MAX_FACTOR * len(release) or size > SEQUENCE_MAX_WORDS:
        return None
    return VocabularyExtension(
        column=column, release_size=len(release), added=len(added), size=size, first_added=added[:5]
    )


class VocabularyCheck(BaseModel):
    """--from a release that reads text: the new training tokens its vocabulary misses, per column,
    and which vocabulary the run reads the text with (the rule: VOCABULARY_EXCESS_LIMIT)."""

    parent: str
    columns: list[TokenShare]
    limit: float = VOCABULARY_EXCESS_LIMIT
    adopted: bool  # True: the release's vocabulary (it can be fine-tuned); False: not as it is
    # past the limit, a released text network: its vocabulary extended (it is still fine-tuned)
    extensions: list[VocabularyExtension] = []

    @property
    def reading(self) -> str:
        """ "adopted" (the release's vocabulary), "extended" (the release's with new words appended)
        or "own" (a vocabulary learnt from the new rows: the release is no candidate)."""
        return "adopted" if self.adopted else "extended" if self.extensions else "own"

    @property
    def rule(self) -> str:
        figures = "; ".join(c.describe(self.parent) for c in self.columns)
        if self.extensions:
            return (
                f"{figures}. An excess above {self.limit:.0%}: {self.parent} would read that share of the "
                "new words as unknown, and fine-tuning cannot teach it words its vocabulary lacks. "
                + "; ".join(e.describe(self.parent) for e in self.extensions)
                + f". Within {VOCABULARY_EXTENSION_MAX_FACTOR:g} x its size (the new words would not "
                f"outnumber the ones it learnt), so {self.parent} is extended and fine-tuned, and competes "
                "with the models from scratch, which read the same features"
            )
        if self.adopted:
            return (
                f"{figures}. Every excess is within {self.limit:.0%}: the run reads the text with "
                f"{self.parent}'s vocabulary, so {self.parent} and its fine-tuned copy read the rows as "
                "they were trained to, and the models from scratch lose no more than that share of words"
            )
        return (
            f"{figures}. An excess above {self.limit:.0%}: {self.parent} would read that share of the "
            "new words as unknown, and fine-tuning it cannot teach it words its vocabulary lacks. The run "
            f"reads the text with a vocabulary learnt from the new training rows; {self.parent} and a "
            "fine-tuned copy cannot read those features and are not candidates: the models from scratch, "
            "which learn the new vocabulary, are the fair comparison"
            + " (a released text network is extended instead while its extended vocabulary stays within "
            f"{VOCABULARY_EXTENSION_MAX_FACTOR:g} x its size; a bag of words or a scikit-learn model has "
            "no embedding to extend)"
        )
