"""--from a text network on new words: its vocabulary is extended (new words appended after its
ids) and its embedding gets fresh rows for them, every known word keeping its id and its row."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ml_expert.tools.data.text import (  # noqa: E402
    OUT_OF_VOCABULARY,
    extended_vocabulary,
    token_ids,
    vocabulary_index,
)
from ml_expert.tools.training.dnn import DNNConfig, build_dnn  # noqa: E402
from ml_expert.tools.training.finetune import extend_embedding  # noqa: E402

RELEASE = ["the", "was", "good", "bad", "not", "food", "service", "room"]
OWN = ["the", "was", "good", "bad", "pool", "not", "wifi", "garden"]  # the run's own rule's words
LENGTH, OTHER = 6, 3


def _network():
    config = DNNConfig(
        architecture="text", sequence_length=LENGTH, vocabulary_size=len(RELEASE),
        hidden_units=[8], conv_filters=[4],
    )  # fmt: skip
    return build_dnn(OTHER + LENGTH, "classification", 2, config, seed=0)


def _rows(texts: list[str], vocabulary: list[str]) -> np.ndarray:
    index = vocabulary_index(vocabulary)
    ids = np.array([token_ids(t, index, LENGTH) for t in texts], dtype="float32")
    other = np.random.default_rng(1).normal(size=(len(texts), OTHER)).astype("float32")
    return np.concatenate([other, ids], axis=1)


def test_new_words_are_appended_and_known_words_keep_their_ids() -> None:
    extended = extended_vocabulary(RELEASE, OWN)
    assert extended == [*RELEASE, "pool", "wifi", "garden"]  # appended in the run's own order
    old, new = vocabulary_index(RELEASE), vocabulary_index(extended)
    assert all(new[w] == old[w] for w in RELEASE)
    text = "The food was not good."
    assert token_ids(text, new, LENGTH) == token_ids(text, old, LENGTH)
    assert token_ids("the pool was bad", old, LENGTH)[1] == OUT_OF_VOCABULARY
    assert token_ids("the pool was bad", new, LENGTH)[1] == len(RELEASE) + 2


def test_the_embedding_gains_fresh_rows_and_keeps_every_released_weight(tmp_path) -> None:
    import keras

    released = _network()
    added = len(extended_vocabulary(RELEASE, OWN)) - len(RELEASE)
    extended = extend_embedding(released, added, seed=0)
    before = released.get_layer("embedding").get_weights()[0]
    after = extended.get_layer("embedding").get_weights()[0]
    assert before.shape == (len(RELEASE) + 2, after.shape[1]) and after.shape[0] == before.shape[0] + added
    assert np.array_equal(after[: before.shape[0]], before)  # bit for bit
    fresh = after[before.shape[0] :]
    # drawn by the layer's initializer (uniform in [-0.05, 0.05]), not zeros, not copies, seeded
    assert np.all(np.abs(fresh) <= 0.05) and np.unique(fresh).size == fresh.size
    again = extend_embedding(released, added, seed=0).get_layer("embedding").get_weights()[0]
    assert np.array_equal(again, after)
    for layer in released.layers:
        if layer.name != "embedding":
            for a, b in zip(layer.get_weights(), extended.get_layer(layer.name).get_weights(), strict=True):
                assert np.array_equal(a, b), layer.name

    known = _rows(["the food was not good", "the room was bad", "service was good"], RELEASE)
    assert np.array_equal(released.predict_on_batch(known), extended.predict_on_batch(known))
    words = extended_vocabulary(RELEASE, OWN)
    unseen = _rows(["the pool was good", "the wifi was not bad", "the garden was good"], words)
    assert unseen[:, OTHER:].max() == len(words) + 1  # the new ids reach the new rows
    assert np.isfinite(extended.predict_on_batch(unseen)).all()
    path = tmp_path / "extended.keras"
    extended.save(path)  # the served copy reloads with the new size
    reloaded = keras.saving.load_model(path, compile=False)
    assert reloaded.get_layer("embedding").input_dim == len(words) + 2
    assert np.array_equal(reloaded.predict_on_batch(unseen), extended.predict_on_batch(unseen))


def test_the_extension_is_refused_past_twice_the_release_or_the_sequence_cap() -> None:
    from ml_expert.tools.data.text import SEQUENCE_MAX_WORDS, vocabulary_extension

    release = ["a", "b", "c"]
    grown = vocabulary_extension("text", release, ["a", "x", "y", "z"])
    assert grown is not None and (grown.release_size, grown.added, grown.size) == (3, 3, 6)
    assert grown.first_added == ["x", "y", "z"]
    assert vocabulary_extension("text", release, ["w", "x", "y", "z"]) is None  # 7 > 2 x 3
    big = [f"w{i}" for i in range(1200)]
    assert vocabulary_extension("text", big, [f"v{i}" for i in range(SEQUENCE_MAX_WORDS - 1200)]) is not None
    assert vocabulary_extension("text", big, [f"v{i}" for i in range(SEQUENCE_MAX_WORDS - 1199)]) is None


def test_a_released_network_past_the_limit_reads_its_vocabulary_extended(tmp_path) -> None:
    """Preparation alone: reviews of 8 new subjects against a release learnt on 8 others. A released
    network (an embedding) reads the text with its words and ids, the new words appended; any other
    release (a bag of words, a scikit-learn model) keeps the run's own vocabulary, as before."""
    import sys
    from pathlib import Path

    import pandas as pd

    from ml_expert.tools.data.prepare import TARGET_COLUMN, prepare_data

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.vocabulary_shift import NEW_SUBJECTS, SUBJECTS, reviews

    first, many = tmp_path / "first.csv", tmp_path / "many.csv"
    reviews(600, 0, SUBJECTS).drop_duplicates().to_csv(first, index=False)
    released = prepare_data(str(first), "verdict", 0, tmp_path / "v1", modality="text").input_schema
    vocabulary = released.vocabularies["review"]
    reviews(400, 2, NEW_SUBJECTS).drop_duplicates().to_csv(many, index=False)

    own = prepare_data(str(many), "verdict", 0, tmp_path / "own", modality="text", released=released)
    assert own.vocabulary_check is not None and own.vocabulary_check.reading == "own"
    prepared = prepare_data(
        str(many), "verdict", 0, tmp_path / "ext", modality="text", released=released,
        released_name="v1", released_network=True,
    )  # fmt: skip
    check = prepared.vocabulary_check
    assert check is not None and check.reading == "extended" and not check.adopted
    (extension,) = check.extensions
    words = own.input_schema.vocabularies["review"]  # the run's own rule on the same training rows
    new = [w for w in words if w not in vocabulary]
    assert new and "pool" in new
    schema = prepared.input_schema
    assert schema.vocabularies["review"] == [*vocabulary, *new]  # appended: every known id kept
    assert (extension.release_size, extension.added, extension.size) == (
        len(vocabulary),
        len(new),
        len(vocabulary) + len(new),
    )
    assert [c.key for c in schema.columns] == [c.key for c in released.columns]  # the network's inputs
    assert prepared.sequence is not None and prepared.sequence.vocabulary_size == extension.size
    # the gate's rows: the same test rows as the release reads them (new words unknown)
    as_released = pd.read_parquet(prepared.files["test_released"])
    test = pd.read_parquet(prepared.files["test"])
    assert as_released.index.equals(test.index) and list(as_released.columns) == [
        *released.keys,
        TARGET_COLUMN,
    ]
    ids = list(released.token_ids)
    assert test[ids].to_numpy().max() > len(vocabulary) + 1 >= as_released[ids].to_numpy().max()


def test_a_served_regression_transformer_is_extended_through_its_own_layers(tmp_path) -> None:
    """The extended copy is rebuilt from the network's config: a registered layer (the Transformer's
    positions) and a regression network's target_scale survive, and known ids predict as before."""
    import keras

    from ml_expert.tools.training.dnn import target_scale, with_target_scale

    config = DNNConfig(
        architecture="text", sequence_layer="transformer", sequence_length=LENGTH,
        vocabulary_size=len(RELEASE), hidden_units=[8], conv_filters=[4],
    )  # fmt: skip
    served = with_target_scale(build_dnn(OTHER + LENGTH, "regression", 1, config, seed=0), 3.0, 2.0)
    path = tmp_path / "released.keras"
    served.save(path)
    released = keras.saving.load_model(path, compile=False)  # as a release is read
    extended = extend_embedding(released, 3, seed=0)
    known = _rows(["the food was not good", "the room was bad"], RELEASE)
    assert np.array_equal(released.predict_on_batch(known), extended.predict_on_batch(known))
    assert (
        target_scale(extended) == (3.0, 2.0) and extended.get_layer("embedding").input_dim == len(RELEASE) + 5
    )
