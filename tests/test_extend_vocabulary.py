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
