"""SHA-256 helpers: nothing is loaded unless its hash matches what was recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ml_expert.errors import IntegrityError


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: str | Path) -> str:
    """Hash of a directory (SavedModel) as the hash of its sorted (relative path, file hash) list."""
    root = Path(path)
    if root.is_file():
        return sha256_file(root)
    digest = hashlib.sha256()
    for item in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(item.relative_to(root).as_posix().encode())
        digest.update(sha256_file(item).encode())
    return digest.hexdigest()


def verify(path: str | Path, expected: str) -> None:
    actual = sha256_tree(path)
    if actual != expected:
        raise IntegrityError(
            f"{path}: SHA-256 {actual[:12]}… does not match the recorded {expected[:12]}…; "
            "the file was changed after it was written, refusing to load it"
        )
