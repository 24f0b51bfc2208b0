"""A file registry under `<workspace>/registry/`; light (standard library only) so listing is fast.

    registry/
      versions/<version>/   a verified copy of the deployment package, plus version.json
      aliases.json          {"production": "v3", "previous": "v2"}
      audit.log             one JSON object per line, only ever appended to
      .lock                 serialises writers (fcntl), so two releases cannot take one number

Version names are `v<N>`, allocated here; any name or alias a user passes is validated and the
resolved path must stay inside `versions/` (no traversal, no links out).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ml_expert.errors import UsageError

ALIASES = ("production", "previous")
VERSION_RE = re.compile(r"^v[1-9][0-9]{0,8}$")
VERSION_FILE = "version.json"


class RegistryError(UsageError):
    """A bad version name, an unknown version, or an operation the registry state forbids."""


def validate_name(name: str) -> str:
    """A version name (`v12`) or an alias; anything else (paths, `..`, odd characters) is refused."""
    if not isinstance(name, str) or not (name in ALIASES or VERSION_RE.fullmatch(name)):
        raise RegistryError(
            f"{name!r} is not a version name (v1, v2, ...) or an alias ({', '.join(ALIASES)})"
        )
    return name


def actor() -> str:
    """Who acts: $ML_EXPERT_ACTOR (an agent runtime sets it), else the login user."""
    if os.environ.get("ML_EXPERT_ACTOR"):
        return os.environ["ML_EXPERT_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def comparable(a: dict[str, Any], b: dict[str, Any]) -> tuple[bool, str]:
    """Scores are comparable only on the same held-out rows with the same metric.

    Same data fingerprint + same split seed + same split sizes means the split function saw
    the same rows with the same seed, so the test split is the same set of rows."""
    for key, what in (
        ("data_fingerprint", "data"),
        ("seed", "split seed"),
        ("split_sizes", "split sizes"),
        ("primary_metric", "primary metric"),
    ):
        if a.get(key) != b.get(key):
            return False, f"different {what}: {str(a.get(key))[:16]} vs {str(b.get(key))[:16]}"
    return True, "same data fingerprint, split seed and sizes: same test rows"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Registry:
    def __init__(self, workspace: str | Path) -> None:
        self.root = Path(workspace) / "registry"
        self.versions_dir = self.root / "versions"

    # ---------------------------------------------------------------- reading

    def aliases(self) -> dict[str, str]:
        path = self.root / "aliases.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def versions(self) -> list[dict[str, Any]]:
        if not self.versions_dir.is_dir():
            return []
        out = []
        for child in self.versions_dir.iterdir():
            if VERSION_RE.fullmatch(child.name) and (child / VERSION_FILE).is_file():
                out.append(json.loads((child / VERSION_FILE).read_text()))
        aliases = self.aliases()
        for info in out:
            info["aliases"] = [a for a, v in aliases.items() if v == info["version"]]
        return sorted(out, key=lambda v: int(v["version"][1:]))

    def resolve(self, name: str) -> str:
        """A version name from a version or alias; unknown names are refused."""
        validate_name(name)
        version = self.aliases().get(name) if name in ALIASES else name
        if version is None:
            raise RegistryError(f"no version is {name} yet")
        self.path(version)
        return version

    def path(self, version: str) -> Path:
        """The directory of a version, checked to lie inside versions/ (no traversal, no symlink out)."""
        validate_name(version)
        path = (self.versions_dir / version).resolve()
        if path.parent != self.versions_dir.resolve() or not (path / VERSION_FILE).is_file():
            raise RegistryError(f"no version {version} in {self.root}")
        return path

    def show(self, name: str) -> dict[str, Any]:
        version = self.resolve(name)
        info = json.loads((self.path(version) / VERSION_FILE).read_text())
        info["aliases"] = [a for a, v in self.aliases().items() if v == version]
        info["path"] = str(self.path(version))
        return info

    def audit(self) -> list[dict[str, Any]]:
        path = self.root / "audit.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # ---------------------------------------------------------------- writing

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _log(self, action: str, **fields: Any) -> None:
        entry = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "who": actor(),
            "action": action,
            **fields,
        }
        with open(self.root / "audit.log", "a", encoding="utf-8") as handle:  # append-only
            handle.write(json.dumps(entry, default=str) + "\n")

    def _set_aliases(self, aliases: dict[str, str]) -> None:
        tmp = self.root / "aliases.json.tmp"
        tmp.write_text(json.dumps(aliases, indent=2))
        os.replace(tmp, self.root / "aliases.json")  # atomic: readers never see half a file

    def register(self, package_dir: str | Path, info: dict[str, Any], promote: bool = True) -> str:
        """Copy a verified package in as the next version; by default make it production."""
        source = Path(package_dir)
        manifest = json.loads((source / "manifest.json").read_text())
        with self._locked():
            numbers = [int(p.name[1:]) for p in self.versions_dir.iterdir() if VERSION_RE.fullmatch(p.name)]
            version = f"v{max(numbers, default=0) + 1}"
            target = self.versions_dir / version
            staging = self.versions_dir / f".{version}.staging"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(source, staging)
            for name, digest in manifest["files"].items():
                if _sha256(staging / name) != digest:
                    shutil.rmtree(staging)
                    raise RegistryError(f"{name} changed while it was copied into the registry")
            record = {
                "version": version,
                "registered": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "registered_by": actor(),
                **info,
            }
            (staging / VERSION_FILE).write_text(json.dumps(record, indent=2, default=str))
            os.replace(staging, target)
            self._log(
                "register",
                version=version,
                run_id=info.get("run_id"),
                metrics=info.get("metrics"),
                **({"parent": info["parent"]} if info.get("parent") else {}),
            )
            if promote:
                self._promote(version, reason="released by the pipeline")
        return version

    def _promote(self, version: str, reason: str) -> dict[str, str]:
        aliases = self.aliases()
        if aliases.get("production") == version:
            raise RegistryError(f"{version} is already production")
        new = dict(aliases)
        if aliases.get("production"):
            new["previous"] = aliases["production"]
        new["production"] = version
        self._set_aliases(new)
        info = json.loads((self.path(version) / VERSION_FILE).read_text())
        self._log(
            "promote",
            version=version,
            replaced=aliases.get("production"),
            run_id=info.get("run_id"),
            metrics=info.get("metrics"),
            reason=reason,
        )
        return new

    def promote(self, name: str) -> dict[str, str]:
        with self._locked():
            version = self.resolve(name)
            return self._promote(version, reason="promoted by hand")

    def rollback(self) -> dict[str, str]:
        """Point production back at previous; the version rolled back from becomes previous."""
        with self._locked():
            aliases = self.aliases()
            if not aliases.get("previous"):
                raise RegistryError("nothing to roll back to: no previous version")
            new = {"production": aliases["previous"], "previous": aliases["production"]}
            self._set_aliases(new)
            info = json.loads((self.path(new["production"]) / VERSION_FILE).read_text())
            self._log(
                "rollback",
                version=new["production"],
                replaced=aliases["production"],
                run_id=info.get("run_id"),
                metrics=info.get("metrics"),
            )
            return new
