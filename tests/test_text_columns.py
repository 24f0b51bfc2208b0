"""Free-text columns: the tokenizer matches Keras and the serving runtime, the vocabulary keeps rare
words out of every artifact, and a text table goes through run, export and predict."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from cli_helpers import predict_rows, run_quick

from ml_expert.runtime.inference import _words as runtime_words
from ml_expert.tools.data.profiling import column_roles
from ml_expert.tools.data.schema import InputSchema, to_model_frame
from ml_expert.tools.data.text import fit_vocabulary, words

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SINGLE_WORD = "zanzibarquux"


def test_words_are_keras_text_vectorization_tokens() -> None:
    """Same standardisation and split as TextVectorization's defaults, on titanic's real names."""
    import keras

    titanic = pd.read_csv(DATASETS / "titanic.csv")
    texts = pd.concat([titanic["name"], titanic["home.dest"].dropna()]).tolist()
    vocabulary = fit_vocabulary(texts, min_rows=2, max_words=5000)
    layer = keras.layers.TextVectorization(
        standardize="lower_and_strip_punctuation",
        split="whitespace",
        vocabulary=vocabulary,
        output_mode="int",
    )
    ids = np.asarray(layer(texts))
    index = {w: i + 2 for i, w in enumerate(vocabulary)}  # 0 padding, 1 out of vocabulary
    for row, text in zip(ids, texts, strict=True):
        ours = [index.get(w, 1) for w in words(text)]
        assert list(row[: len(ours)]) == ours and not row[len(ours) :].any(), text


@pytest.mark.parametrize(
    "value",
    [
        "Allen, Miss. Elisabeth Walton",
        "  O'Brien-Smith  jr.\tIII ",
        "Ünïcode Straße!",
        "",
        None,
        float("nan"),
        pd.NA,
        3.5,
    ],
)
def test_runtime_tokenizer_mirrors_the_training_one(value: object) -> None:
    assert runtime_words(value) == words(value)
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        assert words(value) == []  # a missing text is no words, never "nan" or "na"


def test_titanic_names_are_text_and_tickets_are_not() -> None:
    titanic = pd.read_csv(DATASETS / "titanic.csv")
    kinds, dropped = column_roles(titanic, "target")
    assert kinds["name"] == "text" and kinds["home.dest"] == "text"
    assert kinds["ticket"] == "categorical" and kinds["cabin"] == "categorical"
    vocabulary = fit_vocabulary(titanic["name"])
    assert {"mr", "mrs", "miss", "master"} <= set(vocabulary)
    counts = {w: sum(w in words(n) for n in titanic["name"]) for w in vocabulary}
    assert min(counts.values()) >= 5  # no word of fewer than 5 rows is kept


def _reviews(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    good = ["excellent", "great", "lovely", "superb"]
    bad = ["terrible", "awful", "broken", "poor"]
    filler = ["the", "product", "was", "really", "quite", "and", "delivery", "box", "it", "very"]
    label = rng.integers(0, 2, n)
    texts = []
    for y in label:
        chosen = list(rng.choice(filler, 4)) + [str(rng.choice(good if y else bad))]
        rng.shuffle(chosen)
        texts.append(" ".join(chosen).capitalize() + rng.choice([".", "!", "..."]))
    stars = np.where(label == 1, rng.normal(4, 1, n), rng.normal(2, 1, n)).round(1)
    return pd.DataFrame({"review": texts, "stars": stars, "verdict": np.where(label == 1, "keep", "return")})


def test_text_table_through_run_export_and_predict(tmp_path: Path) -> None:
    frame = _reviews(300, 0)
    frame.loc[7, "review"] = f"The {SINGLE_WORD} was great!"
    data = tmp_path / "reviews.csv"
    frame.to_csv(data, index=False)
    workspace = tmp_path / "ws"
    payload = run_quick(data, "verdict", workspace, seed=3)
    run_dir = Path(payload["run_dir"])
    schema = InputSchema.model_validate_json((run_dir / "deployment" / "schema.json").read_text())
    vocabulary = {c.word for c in schema.columns if c.derive == "word" and c.name == "review"}
    assert {"excellent", "terrible", "product"} <= vocabulary
    assert schema.names == ["review", "stars"]

    # The word of one training row is in no artifact (the raw splits aside, which never ship).
    stored = [p for p in run_dir.rglob("*") if p.is_file() and p.suffix not in (".parquet", ".npy")]
    assert any(p.name == "model.onnx" for p in stored)
    for path in stored:
        assert SINGLE_WORD.encode() not in path.read_bytes(), path

    new_rows = _reviews(40, 11).drop(columns="verdict")
    new_rows.loc[0, "review"] = None
    new_rows.loc[1, "review"] = "Completely unseen vocabulary here"
    predicted = predict_rows(payload["run_id"], new_rows, workspace, tmp_path)
    # The package (ONNX with the runtime's own tokenizer) agrees with the trained pipeline.
    model = joblib.load(run_dir / "exports" / payload["chosen_model"] / "model.joblib")
    expected = model.predict_proba(to_model_frame(new_rows, schema))
    np.testing.assert_allclose(predicted[[f"proba_{c}" for c in schema.classes]], expected, atol=1e-4)
    truth = _reviews(40, 11)["verdict"].to_numpy()[2:]
    assert (predicted["prediction"].to_numpy()[2:] == truth).mean() >= 0.9  # it learned the words
