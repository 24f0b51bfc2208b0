"""Inference for an ml-expert deployment package.

This file is copied verbatim into every package as `inference.py`, so it depends only on the
standard library, numpy and onnxruntime (pandas DataFrames are accepted when pandas is
installed, without importing it). Nothing is read before its SHA-256 matches manifest.json.

    from inference import ModelInference
    model = ModelInference("path/to/package")
    model.predict({"age": 31, "sex": "female"})        # -> [label]
    model.predict_proba([{...}, {...}])                 # -> numpy array [N, K]

Command line: `python inference.py rows.json` prints {"predictions": [...]} as JSON.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import numbers
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

MANIFEST_FORMAT = "ml-expert-manifest/1"
MANIFEST = "manifest.json"
MODEL = "model.onnx"
SCHEMA = "schema.json"


_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"  # date
    r"(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"  # time, zone ignored
)
_EPOCH = _dt.date(1970, 1, 1).toordinal()
DAY_MONTH_YEAR = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
"""31/12/2024, 12/31/2024, 31.12.2024 13:45: a date whose day and month order the column's
`date_order` (dmy or mdy) says, decided on the training rows only when a value shows it."""
YEAR_MONTH_DAY = re.compile(r"(\d{4})([/.])(\d{1,2})\2(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
"""2024/12/31 or 2024.12.31 (date_order ymd): year first is always year, month, day."""
_PUNCTUATION = re.compile(r"[!\"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~']")


class IntegrityError(Exception):
    """A package file is missing or its SHA-256 does not match manifest.json."""


class SchemaError(ValueError):
    """An input row does not fit the model's input schema; `row` and `field` say where."""

    def __init__(self, message: str, row: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.row = row
        self.field = field


FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_FIELD_CHARS = 100_000
"""A longer value in one field is refused (a 900k-digit "number" is an attack, not data)."""


def _text_ok(value: Any, row: int, name: str) -> None:
    """Refuse text that cannot be encoded (lone surrogates) or is absurdly long."""
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            raise SchemaError(
                f"row {row}: field '{name}' is longer than {MAX_FIELD_CHARS} characters", row, name
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SchemaError(
                f"row {row}: field '{name}' is not valid Unicode text (a lone surrogate)", row, name
            ) from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_missing(value: Any) -> bool:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    if not isinstance(value, numbers.Real) or isinstance(value, bool | numbers.Integral):
        return False  # an integer is never missing (and math.isnan overflows on a 400-digit one)
    return math.isnan(value)


def category_text(value: Any) -> str:
    """A categorical value as the model's string input: missing (None, NaN of any float type, NA,
    NaT) -> "", 3.0 -> "3", anything else -> str without surrounding whitespace (" female" from a
    "x, sex" file and "female" from a client are one category; a blank is missing); "TRUE", "true"
    and True are "True" (pandas reads a TRUE/false column as booleans, a client may send either).
    Training (ml_expert's schema coercion) calls this very function, so a category is spelt the
    same when fitted and when served."""
    if _is_missing(value):
        return ""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    folded = text.casefold()
    return "True" if folded == "true" else "False" if folded == "false" else text


def iso_date_text(value: Any, order: str | None) -> Any:
    """'31/12/2024 13:45' with order 'dmy' (or '12/31/2024' with 'mdy', '2024/12/31' with 'ymd') as
    ISO '2024-12-31 13:45:00'; any other value unchanged. Training (ml_expert's schema coercion)
    calls this very function."""
    if not isinstance(value, str) or order not in ("dmy", "mdy", "ymd"):
        return value
    match = (YEAR_MONTH_DAY if order == "ymd" else DAY_MONTH_YEAR).fullmatch(value.strip())
    if not match:
        return value
    if order == "ymd":
        year, month, day = match[1], int(match[3]), int(match[4])
    else:
        first, second = int(match[1]), int(match[3])
        year, (day, month) = match[4], ((first, second) if order == "dmy" else (second, first))
    text = f"{year}-{month:02d}-{day:02d}"
    if match[5]:
        text += f" {int(match[5]):02d}:{match[6]}:{match[7] or '00'}"
    return text


def _datetime_part(value: Any, part: str, order: str | None = None) -> float:
    """Same as ml_expert's schema.datetime_part: one numeric feature of an ISO date/time text (or of
    a day/month/year text in the column's `order`)."""
    value = iso_date_text(value, order)
    if isinstance(value, _dt.datetime):  # also pandas Timestamp; NaT gives "NaT", no match
        value = value.isoformat(" ")
    elif isinstance(value, _dt.date):
        value = value.isoformat()
    if not isinstance(value, str):
        return math.nan
    match = _DATETIME.fullmatch(value.strip())
    if not match:
        return math.nan
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    hour, minute, second = int(match[4] or 0), int(match[5] or 0), int(match[6] or 0)
    try:
        date = _dt.date(year, month, day)
    except ValueError:
        return math.nan
    if hour > 23 or minute > 59 or second > 59:
        return math.nan
    if part == "year":
        return float(year)
    if part == "month":
        return float(month)
    if part == "day":
        return float(day)
    if part == "weekday":
        return float(date.weekday())
    if part == "hour":
        return float(hour)
    return float(date.toordinal() - _EPOCH) + (hour * 3600 + minute * 60 + second) / 86400.0


def code_count(value: Any, counts: dict[str, int]) -> float:
    """How many training rows share `value`'s code (0 for a rare or unseen code, NaN when missing).
    Training (ml_expert's schema coercion) calls this very function."""
    text = category_text(value)
    return float("nan") if text == "" else float(counts.get(text, 0))


def composite_part(value: Any, separator: str, position: int) -> str | None:
    """The `position`-th part of a composite code such as B/0/P split at `separator` (stripped), None
    when the value is missing or has fewer parts. Training uses this same function (schema.py)."""
    text = category_text(value).strip()
    if not text or not separator:
        return None
    pieces = text.split(separator)
    piece = pieces[position].strip() if position < len(pieces) else ""
    return piece or None


def _part_number(piece: str | None) -> float:
    """As pandas.to_numeric(errors="coerce") then inf -> NaN: a part that is not a plain number is NaN."""
    if piece is None or "_" in piece or not piece.isascii():
        return math.nan
    try:
        number = float(piece)
    except ValueError:
        return math.nan
    return number if math.isfinite(number) else math.nan


CURRENCY_SYMBOLS = "$€£¥₹"
"""Currency symbols a formatted number may carry (before or after it). Letter codes (USD, EUR)
and suffixes such as 1.2k are not read: k, M, B, bn and lakh mean different things to different
writers, and a wrong multiplier is a silently wrong number."""
_FORMATTED_NUMBER = re.compile(
    r"(?P<sign>[-+])?\s*(?P<pre>[" + CURRENCY_SYMBOLS + r"])?\s*(?P<sign2>[-+])?\s*"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"\s*(?P<post>[" + CURRENCY_SYMBOLS + r"])?\s*(?P<percent>%)?"
)


def number_parts(text: str) -> tuple[float, str | None, bool] | None:
    """A number written for people, read unambiguously: (value, currency symbol or None, percent).

    Accepted: surrounding whitespace; one currency symbol of CURRENCY_SYMBOLS before or after the
    digits ("$1,234.56", "12 €"); comma thousands separators in groups of three with a "." decimal
    ("1,234,567.8"); a "%" suffix, the value kept as written ("45%" -> 45.0, so a client sending
    45 or "45%" means the same); a sign, also after the symbol ("-$5", "$-5"); an accounting
    negative in parentheses ("(1,234)" -> -1234.0). None for anything else, including "1,5" and
    "1.234,5" (decimal commas: the loader's `decimal=","` re-read decides those), "1 234", "1.2k",
    two symbols, a symbol with a "%", and a sign inside parentheses.

    Training (ml_expert's data preparation) and every runtime (this file, copied into each
    deployment package) call this one function, so a value is read the same everywhere."""
    body = text.strip()
    negative = False
    if body.startswith("(") and body.endswith(")"):
        body, negative = body[1:-1].strip(), True
    match = _FORMATTED_NUMBER.fullmatch(body)
    if not match:
        return None
    sign = match["sign"] or match["sign2"]
    symbol = match["pre"] or match["post"]
    if (
        (match["pre"] and match["post"])
        or (match["sign"] and match["sign2"])
        or (symbol and match["percent"])
        or (negative and sign)
    ):
        return None
    number = float(match["digits"].replace(",", ""))
    if negative or sign == "-":
        number = -number
    return number, symbol, bool(match["percent"])


def formatted_number(value: Any, number_format: dict[str, Any]) -> float | None:
    """`value` read as its column's recorded number format; NaN when missing, None when unreadable.

    `number_format` (schema.json) holds `currency` (the column's symbol, or null) and `percent`.
    The symbol and the "%" may be left out ("1,234" in a "$" column is 1234.0), but another
    currency's symbol, or a "%" in a currency column, is unreadable: it is not the column's unit."""
    if _is_missing(value):
        return math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    if not value.strip():
        return math.nan
    parts = number_parts(value) if len(value) <= 400 else None
    if parts is None:
        return None
    number, symbol, percent = parts
    if (symbol and symbol != number_format.get("currency")) or (percent and not number_format.get("percent")):
        return None
    return number


def _words(value: Any) -> list[str]:
    """Same as ml_expert's text.words: lower case, ASCII punctuation stripped, split on whitespace."""
    if _is_missing(value):
        return []
    return _PUNCTUATION.sub("", str(value).lower()).split()


class ModelInference:
    """A verified deployment package: schema-checked rows in, predictions out."""

    def __init__(self, path: str | Path = ".", files: dict[str, str] | None = None) -> None:
        """`files` ({name: SHA-256}) replaces manifest.json's table while the package is being built:
        the build times the package through this class before it writes the manifest, once."""
        self.path = Path(path)
        contents = self._verified_files(files)
        self.schema: dict[str, Any] = json.loads(contents[SCHEMA].decode("utf-8"))
        self.task: str = self.schema["task"]
        self.columns: list[dict[str, Any]] = list(self.schema["columns"])
        # Word ids of a sequence model: word i of a column's vocabulary is i + 2 (1 unknown, 0 padding).
        self._vocabularies = {
            name: {w: i + 2 for i, w in enumerate(words)}
            for name, words in (self.schema.get("vocabularies") or {}).items()
        }
        self._lengths: dict[str, int] = {}
        for col in self.columns:
            if col.get("derive") == "token":
                self._lengths[col["name"]] = self._lengths.get(col["name"], 0) + 1
        import onnxruntime as ort  # here, so training can import the coercion functions alone

        options = ort.SessionOptions()
        # One thread: a single row is microseconds of work, thread hand-off costs more.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(contents[MODEL], options, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self.session.get_outputs()]

    def _verified_files(self, files: dict[str, str] | None = None) -> dict[str, bytes]:
        """Check every file manifest.json (or the given table) lists; return the bytes of the model
        and schema.

        The model and schema are hashed from the very bytes that are then used, so a file
        swapped between the check and the load cannot slip through.
        """
        return self._check(self._manifest_files() if files is None else files)

    def _manifest_files(self) -> dict[str, str]:
        manifest_path = self.path / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise IntegrityError(f"{manifest_path}: manifest is missing; refusing to load") from exc
        except ValueError as exc:
            raise IntegrityError(f"{manifest_path}: manifest is not valid JSON ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise IntegrityError(f"{manifest_path}: not an {MANIFEST_FORMAT} manifest")
        files = manifest.get("files")
        if not isinstance(files, dict):
            raise IntegrityError(f"{manifest_path}: no 'files' table")
        return files

    def _check(self, files: dict[str, str]) -> dict[str, bytes]:
        for required in (MODEL, SCHEMA):
            if required not in files:
                raise IntegrityError(f"{required}: not listed in {MANIFEST}; refusing to load")
        kept: dict[str, bytes] = {}
        for name, expected in files.items():
            relative = PurePosixPath(name)
            if relative.is_absolute() or ".." in relative.parts:
                raise IntegrityError(f"{name}: manifest entry points outside the package")
            file_path = self.path / relative
            try:
                data = file_path.read_bytes()
            except OSError as exc:
                raise IntegrityError(f"{name}: listed in {MANIFEST} but cannot be read ({exc})") from exc
            actual = _sha256(data)
            if actual != expected:
                raise IntegrityError(
                    f"{name}: SHA-256 {actual[:12]}... does not match the manifest's "
                    f"{str(expected)[:12]}...; the file changed after packaging, refusing to load"
                )
            if name in (MODEL, SCHEMA):
                kept[name] = data
        return kept

    @property
    def classes(self) -> list[Any] | None:
        """Original class labels, in the order of predict_proba's columns (None for regression)."""
        return self.schema.get("classes") if self.task == "classification" else None

    @property
    def scores_kind(self) -> str | None:
        """What predict_with_proba's array holds: "probabilities" (classification, a Gaussian
        mixture's memberships), "distances" (k-means: to each centre), or None (regression)."""
        if self.task == "regression":
            return None
        return self._outputs[1] if self.task == "clustering" else "probabilities"

    def validate(self, rows: Any) -> list[dict[str, Any]]:
        """Rows as a list of dicts holding exactly the schema's columns; raises SchemaError.

        Accepts one row (dict), a list of dicts, or a pandas DataFrame. Extra fields (the
        target, ids) are ignored. Numeric fields take numbers, None/NaN (missing) or numeric
        strings; anything else names the row and field in the error.
        """
        records = self._records(rows)
        clean: list[dict[str, Any]] = []
        for i, row in enumerate(records):
            if not isinstance(row, dict):
                raise SchemaError(f"row {i}: expected an object of field values, got {type(row).__name__}", i)
            out: dict[str, Any] = {}
            texts: dict[str, tuple[list[str], set[str]]] = {}
            for col in self.columns:
                name = col["name"]
                if name not in row:
                    raise SchemaError(f"row {i}: missing field '{name}'", i, name)
                value = row[name]
                _text_ok(value, i, name)
                if col.get("derive") in ("word", "token"):
                    if name not in texts:
                        if not (_is_missing(value) or isinstance(value, str | numbers.Number)):
                            raise SchemaError(
                                f"row {i}: field '{name}' must be text, got {type(value).__name__}", i, name
                            )
                        found = _words(None if _is_missing(value) else value)
                        texts[name] = (found, set(found))
                    sequence, present = texts[name]
                    if col["derive"] == "word":
                        out[col["key"]] = 1.0 if col["word"] in present else 0.0
                    else:
                        position, known = col["position"], self._vocabularies.get(name, {})
                        word = (
                            sequence[position] if position < min(len(sequence), self._lengths[name]) else None
                        )
                        out[col["key"]] = 0.0 if word is None else float(known.get(word, 1))
                elif col.get("derive") in ("part", "count"):
                    if not (_is_missing(value) or isinstance(value, str | numbers.Number | np.generic)):
                        got = type(value).__name__
                        raise SchemaError(f"row {i}: field '{name}' must be a code (text or number): {got}")
                    if col["derive"] == "count":
                        out[col["key"]] = code_count(value, col.get("counts") or {})
                    else:
                        where = (col.get("separator") or "", int(col.get("position") or 0))
                        piece = composite_part(value, *where)
                        out[col["key"]] = _part_number(piece) if col["kind"] == "numeric" else (piece or "")
                elif col.get("derive"):
                    if not (_is_missing(value) or isinstance(value, str | _dt.date)):
                        raise SchemaError(
                            f"row {i}: field '{name}' must be a date/time text such as 2024-03-05, "
                            f"got {type(value).__name__}",
                            i,
                            name,
                        )
                    out[col["key"]] = _datetime_part(
                        None if _is_missing(value) else value, col["derive"], col.get("date_order")
                    )
                elif col["kind"] == "numeric":
                    if col.get("number_format") and isinstance(value, str):
                        read = formatted_number(value, col["number_format"])
                        if read is None:
                            example = col["number_format"].get("example", "")
                            raise SchemaError(
                                f"row {i}: field '{name}' must be a number written like {example!r}, "
                                f"got {value[:40]!r}",
                                i,
                                name,
                            )
                        value = read
                    out[name] = self._number(value, i, name)
                else:
                    if not (_is_missing(value) or isinstance(value, str | numbers.Number | np.generic)):
                        raise SchemaError(
                            f"row {i}: field '{name}' must be a category (text or number), "
                            f"got {type(value).__name__}",
                            i,
                            name,
                        )
                    out[name] = category_text(value)
            clean.append(out)
        return clean

    @staticmethod
    def _records(rows: Any) -> list[Any]:
        if isinstance(rows, dict):
            return [rows]
        if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
            return rows.to_dict(orient="records")
        if isinstance(rows, list | tuple):
            return list(rows)
        raise SchemaError(f"expected a dict, a list of dicts or a DataFrame, got {type(rows).__name__}")

    @staticmethod
    def _number(value: Any, row: int, name: str) -> float:
        """numeric -> float; a missing value (None, NaN from a table, "") -> NaN, imputed as in training.

        Refused, with the row and field named: text that is not a number, infinities and "nan"
        text (a client means null), and values beyond float32, the model's input type (they
        would turn into infinities inside the model)."""
        if _is_missing(value):
            return math.nan
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return math.nan
            if "_" in text or len(text) > 400:  # float() takes "1_000", pandas.to_numeric (training) does not
                raise SchemaError(f"row {row}: field '{name}' must be numeric, got {value[:40]!r}", row, name)
            try:
                number = float(text)
            except ValueError:
                raise SchemaError(
                    f"row {row}: field '{name}' must be numeric, got {value[:40]!r}", row, name
                ) from None
            if math.isnan(number):
                raise SchemaError(
                    f"row {row}: field '{name}' is {value!r}: send null for a missing value", row, name
                )
        elif isinstance(value, numbers.Real):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
        else:
            raise SchemaError(
                f"row {row}: field '{name}' must be numeric, got {type(value).__name__}", row, name
            )
        if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
            raise SchemaError(
                f"row {row}: field '{name}' is out of range (finite, |x| <= {FLOAT32_MAX:.4g}), got "
                f"{str(value)[:40]}",
                row,
                name,
            )
        return number

    def _feed(self, clean: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        feed: dict[str, np.ndarray] = {}
        for col in self.columns:
            name = col["key"] if col.get("derive") else col["name"]
            if col["kind"] == "numeric":
                values = np.array([r[name] for r in clean], dtype=np.float64).astype(np.float32)
            else:
                values = np.array([r[name] for r in clean], dtype=object)
            feed[col.get("key") or name] = values.reshape(-1, 1)
        return feed

    def _run(self, rows: Any) -> dict[str, np.ndarray] | None:
        clean = self.validate(rows)
        if not clean:
            return None
        outputs = dict(zip(self._outputs, self.session.run(None, self._feed(clean)), strict=True))
        for name in ("probabilities", "prediction"):
            if name in outputs:
                values = np.asarray(outputs[name], dtype=np.float64).reshape(len(clean), -1)
                bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
                if bad.size:  # never a label with empty or NaN probabilities
                    raise SchemaError(
                        f"row {int(bad[0])}: the model's output is not finite for these inputs", int(bad[0])
                    )
        return outputs

    def predict(self, rows: Any) -> list[Any]:
        """Original class labels (classification), floats (regression) or cluster numbers, one per row."""
        outputs = self._run(rows)
        if outputs is None:
            return []
        if self.task == "clustering":
            return [int(c) for c in outputs["cluster"].ravel()]
        if self.task == "classification":
            classes = self.classes or []
            return [classes[int(i)] if classes else int(i) for i in outputs["label"].ravel()]
        return [float(v) for v in outputs["prediction"].ravel()]

    def predict_with_proba(self, rows: Any) -> tuple[list[Any], np.ndarray | None]:
        """Labels (or values) and, for classification, probabilities from one model run
        (clustering: the clusters and each row's distances to the centres, or memberships)."""
        outputs = self._run(rows)
        if outputs is None:
            empty = np.zeros((0, len(self.classes or [])), dtype=np.float32)
            return [], empty if self.task == "classification" else None
        if self.task == "clustering":
            return [int(c) for c in outputs["cluster"].ravel()], np.asarray(outputs[self._outputs[1]])
        if self.task == "classification":
            classes = self.classes or []
            labels = [classes[int(i)] if classes else int(i) for i in outputs["label"].ravel()]
            return labels, np.asarray(outputs["probabilities"])
        return [float(v) for v in outputs["prediction"].ravel()], None

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities [N, K], columns in the order of `classes`."""
        if self.task != "classification":
            raise ValueError("predict_proba is only defined for classification models")
        outputs = self._run(rows)
        if outputs is None:
            return np.zeros((0, len(self.classes or [])), dtype=np.float32)
        return np.asarray(outputs["probabilities"])


def main(argv: list[str] | None = None) -> int:
    """`python inference.py rows.json [--package DIR]`: print {"predictions": [...]} as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description="Predict with this ml-expert deployment package.")
    parser.add_argument("rows", help="JSON file: one row object or a list of row objects ('-' for stdin)")
    parser.add_argument(
        "--package", default=str(Path(__file__).resolve().parent), help="package directory (default: here)"
    )
    parser.add_argument("--proba", action="store_true", help="also print class probabilities")
    args = parser.parse_args(argv)
    try:
        text = sys.stdin.read() if args.rows == "-" else Path(args.rows).read_text(encoding="utf-8")
        model = ModelInference(args.package)
        rows = json.loads(text)
        result: dict[str, Any] = {"predictions": model.predict(rows)}
        if args.proba and model.task == "classification":
            result["probabilities"] = model.predict_proba(rows).tolist()
    except (IntegrityError, SchemaError, OSError, ValueError) as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
