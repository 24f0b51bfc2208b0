"""A compressed CSV (data.csv.gz, .bz2, .xz, .zip) is read as the table it holds: the same rows and
the same data fingerprint as the plain file; a damaged or many-file archive is a clear data error."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path

import pytest

from ml_expert.errors import DataError
from ml_expert.tools.data.loading import load_table
from ml_expert.tools.data.prepare import fingerprint

IRIS = Path(__file__).resolve().parents[1] / "ml_expert" / "datasets" / "iris.csv"


def _zip(path: Path, *members: tuple[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)


@pytest.mark.parametrize("suffix", ["gz", "bz2", "xz", "zip"])
def test_a_compressed_csv_is_the_table_it_holds(tmp_path: Path, suffix: str) -> None:
    raw = IRIS.read_bytes()
    packed = tmp_path / f"data.csv.{suffix}"
    if suffix == "zip":
        _zip(packed, ("data.csv", raw))
    else:
        packed.write_bytes({"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[suffix](raw))
    plain, _ = load_table(str(IRIS))
    frame, path = load_table(str(packed))
    assert path == packed
    assert frame.shape == (150, 5) and fingerprint(frame) == fingerprint(plain)


def test_a_damaged_or_many_file_archive_is_a_data_error(tmp_path: Path) -> None:
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(IRIS.read_bytes())[:300])
    with pytest.raises(DataError, match="does not decompress"):
        load_table(str(cut))
    two = tmp_path / "two.zip"
    _zip(two, ("a.csv", b"x,y\n1,2\n"), ("b.csv", b"x,y\n3,4\n"))
    with pytest.raises(DataError, match=r"a zip archive of 2 files \['a.csv', 'b.csv'\]; zip one CSV file"):
        load_table(str(two))
    torn = tmp_path / "torn.csv.zip"
    _zip(torn, ("data.csv", IRIS.read_bytes()))
    torn.write_bytes(torn.read_bytes()[:200])
    with pytest.raises(DataError, match="zip archive that does not decompress"):
        load_table(str(torn))
    locked = tmp_path / "locked.csv.zip"  # the encrypted flag set, as a password-protected zip has it
    _zip(locked, ("data.csv", IRIS.read_bytes()))
    data = bytearray(locked.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[6] |= 1  # local file header: general purpose flags
    data[central + 8] |= 1  # central directory: the same flags
    locked.write_bytes(bytes(data))
    with pytest.raises(DataError, match="encrypted"):
        load_table(str(locked))
