"""A corpus of awkward and broken files, each built here, each with its expected outcome.

Most cases call `prepare_data` directly (fast); a representative few go through the real CLI
to prove the exit code, the one JSON object and that nothing was registered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from ml_expert.errors import DataError
from ml_expert.memory import EmbeddedMemory
from ml_expert.tools.data.prepare import PreparedData, prepare_data

CLI = [sys.executable, "-m", "ml_expert"]
RNG = np.random.default_rng(0)


def _frame(n: int = 60, classes: tuple[str, ...] = ("a", "b")) -> pd.DataFrame:
    """A small learnable table: two numeric features and a label."""
    rng = np.random.default_rng(n)
    y = np.array([classes[i % len(classes)] for i in range(n)])
    shift = np.array([classes.index(v) for v in y], dtype=float)
    return pd.DataFrame(
        {
            "x1": np.round(rng.normal(size=n) + 2 * shift, 4),
            "x2": np.round(rng.normal(size=n), 4),
            "target": y,
        }
    )


def _csv_text(frame: pd.DataFrame, sep: str = ",") -> str:
    return frame.to_csv(index=False, sep=sep, lineterminator="\n")


# ---------------------------------------------------------------------------------------------
# Builders: each writes one file (or folder) under `root` and returns its path.


def semicolon_latin1_decimal_comma(root: Path) -> Path:
    frame = _frame()
    frame["ville"] = ["Orléans", "Besançon", "Zürich"] * 20
    text = _csv_text(frame, sep=";").replace(".", ",")
    path = root / "semicolon_latin1.csv"
    path.write_bytes(text.encode("latin-1"))
    return path


def utf8_bom_tab(root: Path) -> Path:
    path = root / "bom_tab.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv_text(_frame(), sep="\t").encode())
    return path


def utf16_spreadsheet_export(root: Path) -> Path:
    path = root / "unicode.txt"
    path.write_bytes(_csv_text(_frame(), sep="\t").replace("\n", "\r\n").encode("utf-16"))
    return path


def quoted_newlines(root: Path) -> Path:
    frame = _frame()
    frame["note"] = ["first line\nsecond, with comma", "plain", 'say "hi"'] * 20
    path = root / "quoted_newlines.csv"
    frame.to_csv(path, index=False)
    return path


def na_placeholders(root: Path) -> Path:
    frame = _frame().astype({"x2": object})
    for i, token in enumerate(["?", "n/a", "NA", "-", ""]):
        frame.loc[i * 3, "x2"] = token
    path = root / "placeholders.csv"
    frame.to_csv(path, index=False)
    return path


def infinities(root: Path) -> Path:
    frame = _frame().astype({"x1": object})
    frame.loc[[1, 4], "x1"] = "inf"
    frame.loc[7, "x1"] = "-inf"
    path = root / "infinities.csv"
    frame.to_csv(path, index=False)
    return path


def duplicates_ids_constants(root: Path) -> Path:
    frame = pd.concat([_frame(), _frame().head(7)], ignore_index=True)
    frame.insert(0, "row_id", range(1, len(frame) + 1))  # unique per row after the duplicates go
    frame["const"] = 5
    frame["code"] = [f"C{i:05d}" for i in range(len(frame))]
    frame.loc[len(_frame()) :, ["row_id", "code"]] = frame.loc[:6, ["row_id", "code"]].to_numpy()
    path = root / "dups_ids.csv"
    frame.to_csv(path, index=False)
    return path


def leaky(root: Path) -> Path:
    frame = _frame()
    frame["outcome_code"] = frame["target"].map({"a": "closed-A", "b": "closed-B"})
    path = root / "leaky.csv"
    frame.to_csv(path, index=False)
    return path


def numeric_near_copies(root: Path) -> Path:
    frame = _frame(120, ("lo", "mid", "hi"))
    rng = np.random.default_rng(7)
    frame["score"] = frame["target"].map({"lo": 0, "mid": 10, "hi": 20}) + rng.normal(0, 1, 120).round(3)
    path = root / "numeric_leak.csv"
    frame.to_csv(path, index=False)
    return path


def regression_near_copy(root: Path) -> Path:
    frame = _frame(80)
    frame["target"] = (frame["x1"] * 3 + np.random.default_rng(8).normal(0, 1, 80)).round(3)
    frame["target_copy"] = frame["target"] * 1.8 + 32
    path = root / "regression_leak.csv"
    frame.to_csv(path, index=False)
    return path


def string_labels_multiclass(root: Path) -> Path:
    path = root / "labels.csv"
    _frame(90, ("cat", "dog", "bird")).to_csv(path, index=False)
    return path


def dates(root: Path) -> Path:
    frame = _frame()
    days = pd.date_range("2023-01-01", periods=len(frame), freq="37h")
    frame["when"] = days.strftime("%Y-%m-%d %H:%M:%S")
    frame.loc[3, "when"] = None
    path = root / "dates.csv"
    frame.to_csv(path, index=False)
    return path


def high_cardinality(root: Path) -> Path:
    frame = _frame(300)
    frame["city"] = [f"city{int(v)}" for v in np.random.default_rng(1).zipf(1.6, 300) % 150]
    path = root / "high_card.csv"
    frame.to_csv(path, index=False)
    return path


def parquet(root: Path) -> Path:
    path = root / "table.parquet"
    frame = _frame()
    frame["stamp"] = pd.date_range("2024-01-01 06:00", periods=len(frame), freq="5h")
    frame.loc[2, "stamp"] = pd.NaT
    frame.to_parquet(path)
    return path


def mostly_numeric_text(root: Path) -> Path:
    frame = _frame(80).astype({"x2": object})
    frame.loc[[3, 9], "x2"] = ["unknown", "see notes"]
    path = root / "numeric_with_text.csv"
    frame.to_csv(path, index=False)
    return path


def npz_tabular(root: Path) -> Path:
    path = root / "tab.npz"
    frame = _frame()
    np.savez(path, X=frame[["x1", "x2"]].to_numpy(), y=frame["target"].to_numpy().astype(str))
    return path


def npz_images(root: Path) -> Path:
    path = root / "img.npz"
    rng = np.random.default_rng(3)
    y = np.arange(60) % 3
    X = rng.integers(0, 50, size=(60, 6, 6, 1)).astype("uint8") + (y[:, None, None, None] * 60).astype(
        "uint8"
    )
    np.savez(path, X=X, y=y)
    return path


def npz_channels_first(root: Path) -> Path:
    path = root / "chw.npz"
    X = np.zeros((30, 3, 5, 5), dtype="float32")
    X[:, 0, 1, 2] = np.arange(30)  # red channel at row 1, column 2
    np.savez(path, X=X, y=np.arange(30) % 2)
    return path


def pixel_csv(root: Path) -> Path:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.integers(0, 16, size=(60, 16)), columns=[f"pixel{i}" for i in range(16)])
    frame["target"] = np.arange(60) % 2
    path = root / "pixels.csv"
    frame.to_csv(path, index=False)
    return path


def some_targets_missing(root: Path) -> Path:
    frame = _frame(70).astype({"target": object})
    frame.loc[[0, 5, 9], "target"] = None
    path = root / "some_missing_target.csv"
    frame.to_csv(path, index=False)
    return path


def formatted_numbers(root: Path) -> Path:
    """A price unique per row written "$1,234.56" (read as text, it was dropped as ID-like), a rate
    written "45.2%", an accounting balance "(1,234)" and one price nobody can read."""
    frame = _frame(80)
    frame["price"] = [f"${v:,.2f}" for v in (frame["x1"] + 5) * 700 + np.arange(80)]
    frame["rate"] = [f"{v:.1f}%" for v in frame["x2"] * 10 + 50]
    frame["balance"] = [f"({-v:,.0f})" if v < 0 else f"{v:,.0f}" for v in frame["x2"] * 3000]
    frame.loc[4, "price"] = "call us"
    path = root / "formatted_numbers.csv"
    frame.to_csv(path, index=False)
    return path


def formatted_regression_target(root: Path) -> Path:
    """A regression target written with thousands separators ("12,345"): a number, not 80 classes."""
    frame = _frame(80)
    frame["target"] = [f"{v:,.0f}" for v in frame["x1"] * 3000 + 9000]
    path = root / "formatted_target.csv"
    frame.to_csv(path, index=False)
    return path


def mixed_currencies(root: Path) -> Path:
    frame = _frame(60)
    frame["amount"] = [f"{'$' if i % 2 else '€'}{i * 37 % 11 + 1},000" for i in range(60)]
    path = root / "mixed_currencies.csv"
    frame.to_csv(path, index=False)
    return path


def label_spellings(root: Path) -> Path:
    """A hand-kept label column: 'yes', 'Yes ', ' YES', 'no ' and 'No' are two classes, not five."""
    frame = _frame(80, ("yes", "no")).astype({"target": object})
    for rest, spelling in ((0, "Yes "), (1, "no "), (2, " YES"), (3, "No")):  # 8 rows each
        frame.loc[frame.index % 10 == rest, "target"] = spelling
    path = root / "label_spellings.csv"
    frame.to_csv(path, index=False)
    return path


def day_first_dates(root: Path) -> Path:
    """Dates written 31/12/2024 (and 31.12.2024 14:30): read as dates, not dropped as ID-like text."""
    frame = _frame(60)
    days = pd.date_range("2023-01-01", periods=60, freq="5D")
    frame["when"] = days.strftime("%d/%m/%Y")
    frame["stamp"] = (days + pd.Timedelta(hours=14, minutes=30)).strftime("%d.%m.%Y %H:%M")
    path = root / "day_first.csv"
    frame.to_csv(path, index=False)
    return path


def european_thousands(root: Path) -> Path:
    """A semicolon file with decimal commas and dots grouping thousands (1.234,56): the sniffed
    delimiter is the header's (a comma split the rows, not the header), and the prices are numbers."""
    frame = _frame(60)
    prices = (frame["x1"] + 5) * 900 + np.arange(60)
    frame["preis"] = [f"{v:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".") for v in prices]
    path = root / "european.csv"
    path.write_text(_csv_text(frame.assign(x1=frame["x1"].map(lambda v: f"{v}".replace(".", ","))), sep=";"))
    return path


def comma_space(root: Path) -> Path:
    """'x, sex, target' with a space after each comma: the categories are 'female', as a client sends
    them, not ' female' (a client's 'female' was an unseen category, silently)."""
    frame = _frame(60)
    frame["sex"] = ["female", "male", "male"] * 20
    path = root / "comma_space.csv"
    path.write_text(_csv_text(frame).replace(",", ", ").replace("male\n", "male \n"))
    return path


def _write(name: str, content: str | bytes) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        path = root / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    build.__name__ = name
    return build


def _frame_file(name: str, frame_fn: Callable[[], pd.DataFrame]) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        path = root / name
        frame_fn().to_csv(path, index=False)
        return path

    build.__name__ = name
    return build


def _corrupt_image_folder(root: Path) -> Path:
    folder = root / "broken_images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            (folder / label / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    return folder


def _empty_dir(root: Path) -> Path:
    folder = root / "no_images"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "readme.txt").write_text("nothing here")
    return folder


def _ragged() -> str:
    return "a,b,target\n1,2,x\n3,4,y\n5,6,7,x\n" + "1,2,x\n" * 30


def _no_features() -> pd.DataFrame:
    return _frame()[["target"]]


def _features_all_missing() -> pd.DataFrame:
    frame = _frame()
    frame["x1"] = np.nan
    frame["x2"] = np.nan
    return frame


def _unique_labels() -> pd.DataFrame:
    frame = _frame()
    frame["target"] = [f"label-{i}" for i in range(len(frame))]
    return frame


def _rare_class() -> pd.DataFrame:
    frame = _frame(60)
    frame.loc[[0, 1], "target"] = "c"
    return frame


def _all_target_missing() -> pd.DataFrame:
    frame = _frame()
    frame["target"] = np.nan
    return frame


# name -> (builder, expected): expected is a DataError message fragment, or a check of the result.
OK_CASES: dict[str, tuple[Callable[[Path], Path], Callable[[PreparedData], None]]] = {}
ERROR_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing_path": (lambda root: root / "nope.csv", "no such file"),
    "empty_file": (_write("empty.csv", b""), "the file is empty"),
    "header_only": (_write("header_only.csv", "a,b,target\n"), "header only"),
    "html": (_write("page.csv", "<!DOCTYPE html><html><body><table></table></body></html>\n"), "HTML"),
    "json": (_write("data.csv", '[{"a": 1, "target": 0}]\n'), "JSON"),
    "binary_garbage": (_write("garbage.csv", RNG.integers(0, 256, 5000, dtype=np.uint8).tobytes()), "binary"),
    "prose": (
        _write(
            "notes.csv", "This is a note about the data.\nIt has no table at all in it, only words.\n" * 3
        ),
        "not a table",
    ),
    "ragged_rows": (_write("ragged.csv", _ragged()), "inconsistent field counts"),
    "target_missing": (
        _frame_file("no_target.csv", lambda: _frame().rename(columns={"target": "label"})),
        "label",
    ),
    "target_all_missing": (_frame_file("target_nan.csv", _all_target_missing), "entirely missing"),
    "one_class": (_frame_file("one_class.csv", lambda: _frame(40, ("a",))), "one class only"),
    "too_few_rows": (_frame_file("tiny.csv", lambda: _frame(12)), "at least 20"),
    # a rare class is dropped only while two classes remain (rare_class_dropped below)
    "too_few_of_a_class": (
        _frame_file("lone_rare.csv", lambda: _frame(40, ("a",)).assign(target=["a"] * 38 + ["b"] * 2)),
        "too few rows of some class",
    ),
    "no_features": (_frame_file("only_target.csv", _no_features), "no feature columns"),
    "features_all_missing": (_frame_file("all_missing.csv", _features_all_missing), "every feature value"),
    "unique_labels": (_frame_file("unique_labels.csv", _unique_labels), "unique on every row"),
    "npz_without_y": (
        lambda root: (np.savez(root / "noy.npz", X=np.zeros((30, 2))), root / "noy.npz")[1],
        "arrays named 'X' and 'y'",
    ),
    "corrupt_images": (_corrupt_image_folder, "cannot be read"),
    "excel_workbook": (_write("book.xlsx", b"PK\x03\x04" + b"\x00" * 40), "save the sheet as CSV"),
    "parquet_truncated": (_write("cut.parquet", b"PAR1" + b"\x01" * 30), "not a readable Parquet"),
    "npz_pickled_objects": (
        lambda root: (
            np.savez(root / "obj.npz", X=np.zeros((30, 2)), y=np.array(["a"] * 30, dtype=object)),
            root / "obj.npz",
        )[1],
        "pickled Python objects",
    ),
    "folder_without_images": (_empty_dir, "without images"),
}


def _ok(builder: Callable[[Path], Path]):
    def register(check: Callable[[PreparedData], None]) -> Callable[[PreparedData], None]:
        OK_CASES[check.__name__] = (builder, check)
        return check

    return register


def _huge_values() -> pd.DataFrame:
    frame = _frame(60)
    return frame.assign(x1=frame.x1.mask(frame.index % 20 == 0, 1e300))


@_ok(_frame_file("huge_values.csv", _huge_values))
def huge_values_missing(p: PreparedData) -> None:
    """Numbers beyond float32's range cannot reach a model: made missing, counted per column."""
    assert p.nonfinite_values == {"x1": 3}
    assert any(f["finding"] == "infinite or out-of-range numbers" for f in p.profile["findings"])


@_ok(_frame_file("rare_class.csv", _rare_class))
def rare_class_dropped(p: PreparedData) -> None:
    """Two rows of class "c" (fewer than RARE_CLASS_ROWS): dropped, counted (not named), and the
    two other classes go on."""
    assert p.rare_classes_dropped == {"classes": 1, "rows": 2}
    assert p.input_schema.classes == ["a", "b"] and p.split_sizes.total == 58
    assert any(f["figure"] == {"classes": 1, "rows": 2} for f in p.profile["findings"])


@_ok(semicolon_latin1_decimal_comma)
def semicolon_latin1(p: PreparedData) -> None:
    assert p.load.delimiter == ";" and p.load.encoding == "latin-1"
    kinds = {c.name: c.kind for c in p.input_schema.columns}
    assert kinds == {"x1": "numeric", "x2": "numeric", "ville": "categorical"}  # 1,5 read as 1.5
    assert sorted(p.input_schema.columns[2].categories) == ["Besançon", "Orléans", "Zürich"]


@_ok(utf8_bom_tab)
def bom_tab(p: PreparedData) -> None:
    assert p.load.delimiter == "\t" and p.input_schema.names == ["x1", "x2"]


@_ok(utf16_spreadsheet_export)
def utf16(p: PreparedData) -> None:
    assert p.load.delimiter == "\t" and p.load.encoding == "utf-16"
    assert p.input_schema.names == ["x1", "x2"] and p.rows_in == 60


@_ok(quoted_newlines)
def newlines_in_quotes(p: PreparedData) -> None:
    assert p.rows_in == 60
    assert {c.name: c.kind for c in p.input_schema.columns}["note"] == "categorical"


@_ok(na_placeholders)
def placeholders(p: PreparedData) -> None:
    assert {c.name: c.kind for c in p.input_schema.columns}["x2"] == "numeric"
    assert p.profile["column_profiles"]["x2"]["missing"] == 5
    assert any(f["finding"] == "missing values" and f.get("column") == "x2" for f in p.findings)


@_ok(infinities)
def infinite_values(p: PreparedData) -> None:
    assert p.profile["column_profiles"]["x1"]["missing"] == 3
    assert np.isfinite(np.load(p.files["X_train"])).all()


@_ok(duplicates_ids_constants)
def dups_ids_constants(p: PreparedData) -> None:
    assert p.duplicates_removed == 7 and p.rows_in == 67
    assert set(p.dropped_columns) == {"row_id", "const", "code"}
    assert "ID-like" in p.dropped_columns["row_id"] and "constant" in p.dropped_columns["const"]
    assert "ID-like" in p.dropped_columns["code"]
    actions = {f.get("column"): f["action"] for f in p.findings}
    assert actions["row_id"] == actions["const"] == "dropped"


@_ok(leaky)
def leakage(p: PreparedData) -> None:
    assert set(p.leakage_suspects) == {"outcome_code"}
    assert "outcome_code" not in p.input_schema.names
    assert "predict the target with accuracy 1.000" in p.dropped_columns["outcome_code"]


@_ok(numeric_near_copies)
def numeric_leak(p: PreparedData) -> None:
    assert set(p.leakage_suspects) == {"score"} and "thresholds" in p.leakage_suspects["score"]
    assert p.input_schema.names == ["x1", "x2"]


@_ok(regression_near_copy)
def regression_leak(p: PreparedData) -> None:
    assert p.task == "regression" and set(p.leakage_suspects) == {"target_copy"}
    assert "correlation with the target 1.0000" in p.leakage_suspects["target_copy"]


@_ok(string_labels_multiclass)
def string_labels(p: PreparedData) -> None:
    assert p.input_schema.classes == ["bird", "cat", "dog"]
    train = pd.read_parquet(p.files["train"])
    assert sorted(train["__target__"].unique()) == [0, 1, 2]


@_ok(dates)
def datetimes(p: PreparedData) -> None:
    assert p.datetime_columns == {"when": ["year", "month", "day", "weekday", "hour", "epoch_days"]}
    derived = [c for c in p.input_schema.columns if c.derive]
    assert [c.key for c in derived][0] == "when__year" and all(c.kind == "numeric" for c in derived)
    assert p.n_features_out == 2 + 6


@_ok(high_cardinality)
def high_card(p: PreparedData) -> None:
    city = next(c for c in p.input_schema.columns if c.name == "city")
    assert city.kind == "categorical" and 2 <= len(city.categories) <= 30
    assert p.n_features_out <= 2 + len(city.categories) + 1  # frequent values + one rare column
    train = pd.read_parquet(p.files["train"])
    counts = train["city"].value_counts()
    assert set(city.categories) <= set(counts[counts >= 5].index)
    singletons = set(counts[counts == 1].index)
    pipeline = joblib.load(p.files["preprocessor"]).named_transformers_["cat"]
    stored = {str(v) for v in pipeline.named_steps["group"].categories_[0]}
    stored |= {str(v) for v in pipeline.named_steps["onehot"].categories_[0]}
    stored |= {str(v) for v in pipeline.named_steps["impute"].statistics_}
    assert singletons and not singletons & stored and not singletons & set(city.categories)


@_ok(parquet)
def parquet_file(p: PreparedData) -> None:
    assert p.load.format == "parquet" and p.input_schema.names == ["x1", "x2", "stamp"]
    assert p.datetime_columns["stamp"] == ["year", "month", "day", "weekday", "hour", "epoch_days"]
    train = pd.read_parquet(p.files["train"])
    assert train["stamp__hour"].notna().sum() >= len(train) - 1 and train["stamp__year"].eq(2024).any()


@_ok(mostly_numeric_text)
def numeric_text(p: PreparedData) -> None:
    assert {c.name: c.kind for c in p.input_schema.columns}["x2"] == "numeric"
    found = [f for f in p.findings if f["finding"] == "text in a numeric column"]
    assert found == [
        {"finding": "text in a numeric column", "figure": 2, "column": "x2", "action": found[0]["action"]}
    ]


@_ok(npz_tabular)
def npz_table(p: PreparedData) -> None:
    assert p.load.format == "npz" and p.modality == "tabular" and p.input_schema.names == ["x0", "x1"]
    assert p.input_schema.classes == ["a", "b"]


@_ok(npz_images)
def npz_image(p: PreparedData) -> None:
    assert p.modality == "image" and p.image_shape == [6, 6, 1] and p.n_features_out == 36
    assert p.input_schema.names[:2] == ["pixel_0_0", "pixel_0_1"]


@_ok(npz_channels_first)
def npz_chw(p: PreparedData) -> None:
    assert p.image_shape == [5, 5, 3] and p.n_features_out == 75
    train = pd.read_parquet(p.files["train"])
    assert (
        train["pixel_1_2_0"].max() > 0 and train.drop(columns=["pixel_1_2_0", "__target__"]).eq(0).all().all()
    )


@_ok(pixel_csv)
def pixels_auto(p: PreparedData) -> None:
    assert p.modality == "image" and p.image_shape == [4, 4, 1]


@_ok(some_targets_missing)
def partial_target(p: PreparedData) -> None:
    assert p.rows_without_target == 3 and p.split_sizes.total + p.outliers.dropped == 67


@_ok(formatted_numbers)
def numbers_as_text(p: PreparedData) -> None:
    specs = {c.name: c for c in p.input_schema.columns}
    assert {n: specs[n].kind for n in ("price", "rate", "balance")} == dict.fromkeys(
        ("price", "rate", "balance"), "numeric"
    )
    assert specs["price"].number_format.currency == "$" and specs["rate"].number_format.percent
    assert specs["balance"].number_format.currency is None and not specs["balance"].number_format.percent
    assert {n: r.unreadable for n, r in p.formatted_numbers.items()} == {"price": 1, "rate": 0, "balance": 0}
    found = {f["column"]: f for f in p.findings if f["finding"] == "numbers written as text"}
    assert (
        "$1,234.56 -> 1234.56" in found["price"]["action"]
        and "1 value not in that format is made missing" in found["price"]["action"]
    )
    train = pd.read_parquet(p.files["train"])
    assert train["price"].notna().sum() >= len(train) - 1 and train["price"].min() > 0
    assert (train["balance"] < 0).any() and train["rate"].between(0, 100).all()
    raw = pd.read_parquet(p.files["val_raw"])  # as a caller sends them: the package is checked on these
    assert raw["price"].dropna().str.startswith("$").all()


@_ok(formatted_regression_target)
def target_with_thousands(p: PreparedData) -> None:
    assert p.task == "regression" and p.input_schema.classes is None
    assert p.profile["target_stats"]["min"] > 1000
    assert set(p.formatted_numbers) == {"target"}


@_ok(mixed_currencies)
def mixed_currencies_stay_text(p: PreparedData) -> None:
    """Dollars and euros in one column are not one unit: not read as numbers (adding them is wrong)."""
    assert {c.name: c.kind for c in p.input_schema.columns}["amount"] == "categorical"
    assert not p.formatted_numbers


@_ok(label_spellings)
def target_spellings(p: PreparedData) -> None:
    assert p.input_schema.classes == ["no", "yes"] and p.target_spellings_merged == 4 * 8
    assert any(f["finding"] == "target labels spelt several ways" for f in p.findings)


@_ok(day_first_dates)
def dates_day_first(p: PreparedData) -> None:
    assert set(p.datetime_columns) == {"when", "stamp"} and "hour" in p.datetime_columns["stamp"]
    assert {c.date_order for c in p.input_schema.columns if c.derive} == {"dmy"}
    train = pd.read_parquet(p.files["train"])
    assert train["when__month"].between(1, 12).all() and train["when__day"].max() > 12
    assert (train["stamp__hour"] == 14).all() and train["when__year"].isin([2023]).all()


@_ok(european_thousands)
def european_numbers(p: PreparedData) -> None:
    assert p.load.delimiter == ";" and p.input_schema.names == ["x1", "x2", "preis"]
    assert {c.name: c.kind for c in p.input_schema.columns}["preis"] == "numeric"
    train = pd.read_parquet(p.files["train"])
    assert train["preis"].between(100, 10_000).all() and train["x1"].abs().max() < 10


@_ok(comma_space)
def categories_without_spaces(p: PreparedData) -> None:
    from ml_expert.runtime.inference import category_text

    assert p.input_schema.names == ["x1", "x2", "sex"] and p.input_schema.classes == ["a", "b"]
    assert next(c for c in p.input_schema.columns if c.name == "sex").categories == ["female", "male"]
    assert category_text(" female ") == "female" and category_text("  ") == ""


def test_validation_rows_for_the_package_hold_no_text_the_runtime_refuses(tmp_path: Path) -> None:
    """Text training read as missing in a numeric column ("unknown", a price "call us") is missing in
    the raw validation rows the package is timed on: the runtime refuses such text, and one such
    value in the validation split stopped the run in deployment with a traceback."""
    frame = _frame(100).astype({"x2": object})
    frame["price"] = [f"${v:,.2f}" for v in (frame["x1"] + 5) * 700 + np.arange(100)]
    frame.loc[[3, 36, 69], "x2"] = "unknown"  # 36 and 9 are validation rows (seed 0)
    frame.loc[[9, 40, 73], "price"] = "call us"
    frame.to_csv(tmp_path / "f.csv", index=False)
    p = prepare_data(str(tmp_path / "f.csv"), "target", 0, tmp_path / "data")
    raw = pd.read_parquet(p.files["val_raw"])
    assert raw["x2"].isna().any() and raw["price"].isna().any()  # the text landed in validation rows
    assert not raw["x2"].isin(["unknown"]).any() and not raw["price"].isin(["call us"]).any()
    assert raw["price"].dropna().str.startswith("$").all()  # readable values stay as sent


def test_day_first_dates_are_read_only_when_the_values_show_the_order() -> None:
    from ml_expert.runtime.inference import iso_date_text
    from ml_expert.tools.data.profiling import date_order
    from ml_expert.tools.data.schema import datetime_part

    assert iso_date_text("31/12/2024 9:05", "dmy") == "2024-12-31 09:05:00"
    assert datetime_part("05/03/2024", "month", "dmy") == 3.0
    assert datetime_part("05/03/2024", "month", "mdy") == 5.0
    assert date_order(pd.Series(["13/01/2024", "02/03/2024"])) == "dmy"
    assert date_order(pd.Series(["01/13/2024", "02/03/2024"])) == "mdy"
    assert date_order(pd.Series(["01/02/2024", "02/03/2024"])) is None  # every day <= 12: cannot tell
    assert date_order(pd.Series(["2024/01/02", "2024/12/31 08:00"])) == "ymd"
    assert datetime_part("2024/1/31 8:05", "day", "ymd") == 31.0
    assert datetime_part("2024-01-31", "day", "dmy") == 31.0  # an ISO date is read in any column


def test_the_runtime_reads_formatted_numbers_and_day_first_dates_as_training_does() -> None:
    """ModelInference.validate (predict, the package, serve) on the columns a schema records."""
    from ml_expert.runtime.inference import ModelInference, SchemaError

    model = ModelInference.__new__(ModelInference)  # no package: validate needs the columns only
    model._vocabularies, model._lengths = {}, {}
    model.columns = [
        {
            "name": "price",
            "key": "price",
            "kind": "numeric",
            "number_format": {"currency": "$", "percent": False},
        },
        {"name": "when", "key": "when__month", "kind": "numeric", "derive": "month", "date_order": "dmy"},
    ]
    rows = model.validate([{"price": "($1,234.50)", "when": "05/03/2024"}, {"price": None, "when": None}])
    assert rows[0] == {"price": -1234.5, "when__month": 3.0}
    assert np.isnan(rows[1]["price"]) and np.isnan(rows[1]["when__month"])
    with pytest.raises(SchemaError) as caught:
        model.validate([{"price": "12%", "when": "05/03/2024"}])
    assert caught.value.field == "price"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,234.56", (1234.56, "$", False)),
        (" 45% ", (45.0, None, True)),
        ("(1,234)", (-1234.0, None, False)),
        ("($1,200.50)", (-1200.5, "$", False)),
        ("12 €", (12.0, "€", False)),
        ("-$5", (-5.0, "$", False)),
        ("£-5.5", (-5.5, "£", False)),
        ("1,234,567", (1234567.0, None, False)),
        (".5%", (0.5, None, True)),
        ("1,5", None),  # a decimal comma, or a thousands separator in the wrong place
        ("1.234,56", None),
        ("12,34", None),
        ("1 234", None),
        ("1.2k", None),
        ("$5%", None),
        ("$5€", None),
        ("(-5)", None),
        ("--5", None),
        ("USD 5", None),
        ("abc", None),
    ],
)
def test_number_parts_reads_only_unambiguous_formats(text: str, expected: tuple | None) -> None:
    from ml_expert.runtime.inference import number_parts

    assert number_parts(text) == expected


def test_formatted_number_keeps_to_the_column_format() -> None:
    """The symbol and "%" may be left out; another currency or a "%" in a money column is unreadable."""
    import math

    from ml_expert.runtime.inference import formatted_number

    dollars = {"currency": "$", "percent": False}
    assert formatted_number("$1,234.5", dollars) == 1234.5
    assert formatted_number("1,234.5", dollars) == 1234.5 and formatted_number(7, dollars) == 7.0
    assert formatted_number("€5", dollars) is None and formatted_number("5%", dollars) is None
    assert math.isnan(formatted_number(" ", dollars)) and math.isnan(formatted_number(None, dollars))
    assert formatted_number("45%", {"currency": None, "percent": True}) == 45.0


def test_corpus_is_large_enough() -> None:
    assert len(OK_CASES) + len(ERROR_CASES) >= 20


@pytest.mark.parametrize("name", sorted(OK_CASES))
def test_awkward_file_is_absorbed(name: str, tmp_path: Path) -> None:
    builder, check = OK_CASES[name]
    prepared = prepare_data(str(builder(tmp_path)), "target", 0, tmp_path / "data")
    assert prepared.splits_disjoint
    check(prepared)
    json.dumps(prepared.profile)  # the profile is plain JSON (figures only)


@pytest.mark.parametrize("name", sorted(ERROR_CASES))
def test_broken_file_is_refused_clearly(name: str, tmp_path: Path) -> None:
    builder, fragment = ERROR_CASES[name]
    # without a task, a table with no target column is clustered (issue 15); a supervised task refuses it
    task = "classification" if name == "target_missing" else "auto"
    with pytest.raises(DataError) as info:
        prepare_data(str(builder(tmp_path)), "target", 0, tmp_path / "data", task=task)
    assert fragment in info.value.message
    assert "\n" not in info.value.message and len(info.value.message) < 600
    assert not (tmp_path / "data").exists()  # nothing written


def test_target_missing_names_the_columns(tmp_path: Path) -> None:
    path = ERROR_CASES["target_missing"][0](tmp_path)
    with pytest.raises(DataError, match=r"the columns are: x1, x2, label\. Pass --target NAME"):
        prepare_data(str(path), "target", 0, tmp_path / "data", task="regression")


@pytest.mark.parametrize("name", ["missing_path", "html", "one_class", "ragged_rows"])
def test_cli_refuses_with_exit_3_and_one_json_object(name: str, tmp_path: Path) -> None:
    path = ERROR_CASES[name][0](tmp_path)
    workspace = tmp_path / "ws"
    proc = subprocess.run(
        [*CLI, "run", str(path), "--json", "--workspace", str(workspace), "--memory", "embedded"]
        + ["--no-dnn", "--budget", "10"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 1
    payload = json.loads(proc.stdout)
    assert payload["ok"] is False and payload["error_kind"] == "data"
    assert ERROR_CASES[name][1] in payload["error"]
    assert "Traceback" not in proc.stderr
    # Nothing registered: no findings in memory, no model, no package.
    if (workspace / "memory.sqlite").exists():
        store = EmbeddedMemory(workspace / "memory.sqlite")
        assert not [k for k in store.keys(payload["run_id"]) if k.endswith("/data-analysis")]
    assert not list(workspace.rglob("manifest.json")) and not list(workspace.rglob("*.onnx"))


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([f"pixel_{i}_{j}" for i in range(8) for j in range(8)], ("image", [8, 8, 1])),
        ([str(i) for i in range(784)], ("image", [28, 28, 1])),
        ([f"{i}x{j}" for i in range(1, 29) for j in range(1, 29)], ("image", [28, 28, 1])),
        ([f"pixel_{i}_{j}_{k}" for i in range(4) for j in range(4) for k in range(3)], ("image", [4, 4, 3])),
        ([f"f{i}" for i in range(64)], ("tabular", None)),
        ([f"pixel{i}" for i in range(48)], ("tabular", None)),
        ([str(i) for i in range(1, 65)], ("tabular", None)),
    ],
    ids=["digits", "mnist-numbered", "mnist-1x1", "rgb", "measurements", "not-square", "numbered-off-by-one"],
)
def test_modality_auto_detection(names: list[str], expected: tuple) -> None:
    from ml_expert.tools.data.modality import detect_modality

    frame = pd.DataFrame(np.zeros((3, len(names))), columns=names)
    frame["target"] = 0
    assert detect_modality(frame, "target")[:2] == expected


def test_modality_image_on_a_non_pixel_table_is_refused() -> None:
    from ml_expert.tools.data.modality import detect_modality

    with pytest.raises(DataError, match="three squares"):
        detect_modality(_frame(), "target", "image")


def test_formatted_numbers_are_read_alike_in_training_predict_package_and_serve(tmp_path: Path) -> None:
    """Trained on "$1,234.56" and "45%" columns (regression target "12,345"): `ml-expert predict`,
    the package's inference.py and `ml-expert serve`'s app read raw rows the same way, and a value
    in another format is a row error naming the field, as for any text in a numeric column."""
    from fastapi.testclient import TestClient

    from ml_expert import run
    from ml_expert.runtime.inference import ModelInference
    from ml_expert.serving.app import create_app, load_served

    rng = np.random.default_rng(5)
    n = 120
    price, rate = rng.uniform(50, 5000, n), rng.uniform(0, 100, n)
    frame = pd.DataFrame(
        {
            "price": [f"${v:,.2f}" for v in price],
            "rate": [f"{v:.1f}%" for v in rate],
            "target": [f"{v:,.0f}" for v in 3 * price + 40 * rate + rng.normal(0, 30, n) + 2000],
        }
    )
    data = tmp_path / "money.csv"
    frame.to_csv(data, index=False)
    ws = tmp_path / "ws"
    result = run(str(data), "target", seed=0, budget=10, workspace=ws, memory="embedded", train_dnn=False)
    assert result.status == "finished" and result.task == "regression", result.reason
    package = Path(result.run_dir) / "deployment"

    rows = frame.drop(columns=["target"]).head(8).copy()
    rows.loc[2, "price"] = " $12,000 "  # whitespace, no cents
    rows.loc[3, "price"] = "4,321"  # the symbol left out
    rows_csv = tmp_path / "rows.csv"
    rows.to_csv(rows_csv, index=False)
    out = tmp_path / "pred.csv"
    proc = subprocess.run(
        [*CLI, "predict", str(package), str(rows_csv), "--output", str(out), "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    from_cli = pd.read_csv(out)["prediction"].tolist()

    records = rows.to_dict(orient="records")
    model = ModelInference(package)
    assert model.predict(records) == pytest.approx(from_cli, rel=1e-6)
    plain = [
        {
            "price": 12000.0 if i == 2 else 4321.0 if i == 3 else float(r["price"][1:].replace(",", "")),
            "rate": float(r["rate"][:-1]),
        }
        for i, r in enumerate(records)
    ]
    assert model.predict(plain) == pytest.approx(from_cli, rel=1e-6)  # "$1,234.56" is 1234.56

    (tmp_path / "rows.json").write_text(json.dumps(records))
    own = subprocess.run(  # the package's own copy of inference.py, as a user runs it
        [sys.executable, "inference.py", str(tmp_path / "rows.json")],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert own.returncode == 0, own.stderr[-2000:]
    assert json.loads(own.stdout)["predictions"] == pytest.approx(from_cli, rel=1e-6)

    client = TestClient(create_app(load_served(package, "v1")))
    answer = client.post("/predict", json={"rows": records})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == pytest.approx(from_cli, rel=1e-6)
    bad = client.post("/predict", json={"rows": [{**records[0], "price": "€5"}]})
    assert bad.status_code == 422 and "price" in bad.text
    assert client.get("/drift").status_code == 200
