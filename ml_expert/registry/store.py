"""A file registry under `<workspace>/registry/`; light (standard library only) so listing is fast.

    registry/
      versions/<version>/   a verified copy of the deployment package, plus version.json
                            and source/ (the loadable model `--from` continues from; not served)
      aliases.json          {"production": "v3", "previous": "v2"}: the unnamed model (registries
                            from before model names; still read)
      models/<name>/aliases.json   each named model's own production and previous

      audit.log             one JSON object per line, only ever appended to
      pending.json          the registration in progress (a write-ahead intent); a crash leaves it
      .lock                 serialises writers (fcntl), so two releases cannot take one number

Registration is one recoverable step: the intent is written before the version directory
appears, then the audit line and the alias change follow. If the process dies anywhere in
between, the next registry operation (read or write) finishes what the intent says, so a
version never lacks its audit line or its alias, and nothing is done twice. A run id is
registered at most once: a resumed run finds and finishes its own version.

A release belongs to a named model (`--model-name`, default from the data file's stem): every
version carries `model_name` in version.json and each name has its own `production` and
`previous`, so two projects sharing a workspace never replace each other's production model.
Version numbers stay one sequence across names (v1, v2, ... are unique in the workspace).

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ml_expert.errors import UsageError, first_problem
from ml_expert.registry.records import (
    Aliases,
    AuditEntry,
    PendingIntent,
    ReleaseCandidate,
    ReleaseInfo,
    SourceRecord,
    VersionRecord,
)

ALIASES = ("production", "previous")
VERSION_RE = re.compile(r"^v[1-9][0-9]{0,8}$")
VERSION_FILE = "version.json"
PENDING_FILE = "pending.json"
SOURCE_DIR = "source"
"""A version's folder beside the package files: the loadable model `--from` fine-tunes (not served)."""


MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class RegistryError(UsageError):
    """A bad version name, an unknown version, or an operation the registry state forbids."""


class ReleaseRefused(RegistryError):
    """The check against `production`, repeated under the registry lock, refused the release."""


def validate_name(name: str) -> str:
    """A version name (`v12`) or an alias; anything else (paths, `..`, odd characters) is refused."""
    if not isinstance(name, str) or not (name in ALIASES or VERSION_RE.fullmatch(name)):
        raise RegistryError(
            f"{name!r} is not a version name (v1, v2, ...) or an alias ({', '.join(ALIASES)})"
        )
    return name


def validate_model_name(name: str) -> str:
    """A model name: lowercase letters, digits, `-` and `_`, not an alias or a version name."""
    if (
        not isinstance(name, str)
        or not MODEL_NAME_RE.fullmatch(name)
        or name in ALIASES
        or VERSION_RE.fullmatch(name)
    ):
        raise RegistryError(
            f"{name!r} is not a model name: 1 to 64 lowercase letters, digits, '-' or '_', starting "
            f"with a letter or digit, and not {', '.join(ALIASES)} or a version name (v1, ...)"
        )
    return name


def model_name_from(source: str | Path | None) -> str:
    """The default model name: the data file's (or folder's) stem, made a legal name."""
    stem = Path(str(source or "model")).stem if source else "model"
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")[:64] or "model"
    if name in ALIASES or VERSION_RE.fullmatch(name):
        name = f"model-{name}"
    return name


def release_model_name(state: dict[str, Any]) -> str:
    """The model a run's release belongs to: `model_name` when given, else the model a fine-tuned
    run started from (`--from`), else the data file's stem."""
    from ml_expert.config import RunConfig
    from ml_expert.phases import DataOrigin, TrainingResult  # here: `models` commands stay light

    config = RunConfig.of(state)
    if config.model_name:
        return validate_model_name(config.model_name)
    training = TrainingResult.maybe(state)
    fine_tuning = training.fine_tuning if training else None
    parent = fine_tuning.model_name if fine_tuning else None
    if parent:
        return validate_model_name(parent)
    # the data result's source (PhaseResultError when it has none), else the data option (a state
    # judged before preparation, or without it)
    data = DataOrigin.maybe(state)
    return model_name_from((data.source if data else None) or config.data)


def actor() -> str:
    """Who acts: $ML_EXPERT_ACTOR (an agent runtime sets it), else the login user."""
    if os.environ.get("ML_EXPERT_ACTOR"):
        return os.environ["ML_EXPERT_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def comparable(a: ReleaseCandidate | ReleaseInfo, b: ReleaseCandidate | ReleaseInfo) -> tuple[bool, str]:
    """Scores are comparable only on the same held-out rows with the same metric.

    Same data fingerprint + same split seed + same split sizes means the split function saw
    the same rows with the same seed, so the test split is the same set of rows."""
    for key, what in (
        ("data_fingerprint", "data"),
        ("seed", "split seed"),
        ("split_sizes", "split sizes"),
        ("primary_metric", "primary metric"),
    ):
        mine, theirs = getattr(a, key), getattr(b, key)
        if mine != theirs:
            return False, f"different {what}: {str(mine)[:16]} vs {str(theirs)[:16]}"
    return True, "same data fingerprint, split seed and sizes: same test rows"


def candidate_record(state: dict[str, Any]) -> ReleaseCandidate:
    """What the production comparison needs from a run's state (data, split, metric, score), read
    through the typed results: a data result without its fingerprint or split sizes is refused
    (PhaseResultError, naming the field) instead of comparing as `None`."""
    from ml_expert.config import RunConfig
    from ml_expert.phases import HeldOutRows, ValidationResult  # here: `models` commands stay light

    validation, rows, config = ValidationResult.of(state), HeldOutRows.of(state), RunConfig.of(state)
    return ReleaseCandidate(
        data_fingerprint=rows.fingerprint,
        seed=config.seed,
        split_sizes=rows.split_sizes.model_dump(),
        primary_metric=validation.primary_metric,
        test_score=validation.test_score,
        force=config.force,
    )


def not_worse_than(
    candidate: ReleaseCandidate,
    current: VersionRecord | None,
    better: Callable[[str, float, float], bool] | None = None,
) -> tuple[bool, str]:
    """(passes, why): a release may replace production unless it scores worse on the same rows.

    `better(metric, a, b)`: whether score a beats b for that metric (tools.scoring.better; the
    registry stays free of scikit-learn). Default: greater is better."""
    if current is None:
        return True, "no production version yet"
    same, why = comparable(candidate, current)
    if not same:
        return True, (
            f"production {current.version} was tested on other held-out data ({why}); nothing compared"
        )
    score, incumbent = candidate.test_score, current.test_score
    metric = candidate.primary_metric or "accuracy"
    beats = better or (lambda _metric, a, b: a > b)
    worse = score is None or incumbent is None or beats(metric, incumbent, score)
    force = candidate.force
    detail = f"test {candidate.primary_metric} {score} vs production {current.version} "
    detail += f"{incumbent}; {why}"
    return (not worse) or force, detail + ("; --force given" if worse and force else "")


def _crash_point(name: str) -> None:
    """Test hook: `ML_EXPERT_CRASH_AT=<name>` kills the process here (SIGKILL), as a power cut would."""
    if os.environ.get("ML_EXPERT_CRASH_AT") == name:
        os.kill(os.getpid(), 9)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Registry:
    _ONLY = "\0only"

    def __init__(self, workspace: str | Path, model: str | None = _ONLY) -> None:
        """`model`: the named model whose aliases this object reads and moves; None: the unnamed
        model of registries from before model names; not given: the registry's only model (the
        unnamed one when it holds several, so a caller that must choose is told to)."""
        self.root = Path(workspace) / "registry"
        self.versions_dir = self.root / "versions"
        self._model = model if model in (None, Registry._ONLY) else validate_model_name(model)
        self._holding = False

    @property
    def model(self) -> str | None:
        if self._model != Registry._ONLY:
            return self._model
        names = self.model_names()
        return names[0] if len(names) == 1 else None

    def _aliases_file(self, model: str | None) -> Path:
        return self.root / "aliases.json" if model is None else self.root / "models" / model / "aliases.json"

    def model_names(self) -> list[str | None]:
        """Every model with a version, sorted; None stands for the unnamed model of an old registry."""
        names = {v.model_name for v in self._version_records()}
        if (self.root / "aliases.json").exists():
            names.add(None)
        return sorted(names, key=lambda n: (n is not None, n or ""))

    # ---------------------------------------------------------------- reading

    def _settle(self) -> None:
        """Before a read: finish a registration a crash interrupted (takes the lock only then)."""
        if not self._holding and (self.root / PENDING_FILE).exists():
            with self._locked():
                pass  # _locked repairs on entry

    def aliases(self) -> dict[str, str]:
        """This model's aliases (production, previous), as aliases.json holds them."""
        self._settle()
        return self._read_aliases().json_dict()

    @staticmethod
    def _load_version(folder: Path) -> VersionRecord:
        """A version's version.json, typed; a damaged one is refused, the file named."""
        file = folder / VERSION_FILE
        try:
            return VersionRecord.model_validate_json(file.read_bytes())
        except ValidationError as exc:
            raise RegistryError(f"{file} is damaged, not a version record: {first_problem(exc)}") from None

    def _version_records(self) -> list[VersionRecord]:
        """Every version folder's record; a folder linked out of versions/ is not a version, and a
        damaged record is left out (one bad file never hides the rest; reading that version by
        name is refused, naming the file)."""
        if not self.versions_dir.is_dir():
            return []
        out = []
        for child in self.versions_dir.iterdir():
            if (
                VERSION_RE.fullmatch(child.name)
                and not child.is_symlink()
                and (child / VERSION_FILE).is_file()
            ):
                with contextlib.suppress(RegistryError):
                    out.append(self._load_version(child))
        return out

    def records(self, every_model: bool = False) -> list[VersionRecord]:
        """This model's versions (or every model's), oldest first, each with its model's aliases on it."""
        self._settle()
        out = [v for v in self._version_records() if every_model or v.model_name == self.model]
        alias_sets: dict[str | None, Aliases] = {}
        for record in out:
            if record.model_name not in alias_sets:
                alias_sets[record.model_name] = self._read_aliases(record.model_name)
            record.aliases = _naming(alias_sets[record.model_name], record.version)
        return sorted(out, key=lambda v: int(v.version[1:]))

    def versions(self, every_model: bool = False) -> list[dict[str, Any]]:
        """`records` as the JSON `models list` and MCP print."""
        return [record.view() for record in self.records(every_model)]

    def resolve(self, name: str) -> str:
        """A version name from a version or alias; unknown names are refused."""
        validate_name(name)
        version = getattr(self._aliases_now(), name) if name in ALIASES else name
        if version is None:
            names = [n for n in self.model_names() if n is not None]
            if self.model is None and len(names) > 1:
                raise RegistryError(
                    f"this registry holds several models ({', '.join(names)}): say which one's {name}"
                )
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

    def record(self, name: str) -> VersionRecord:
        """A version's (or alias's) record, with its aliases and folder."""
        version = self.resolve(name)
        record = self._load_version(self.path(version))
        record.aliases = _naming(self._read_aliases(record.model_name), version)
        record.path = str(self.path(version))
        return record

    def show(self, name: str) -> dict[str, Any]:
        """`record` as the JSON `models show` prints."""
        return self.record(name).view()

    def audit(self) -> list[dict[str, Any]]:
        """Every audit event, as audit.log holds it; a torn line (a crash mid-write) is skipped."""
        self._settle()
        return [entry.json_dict() for entry in self._read_audit()]

    def _read_audit(self) -> list[AuditEntry]:
        path = self.root / "audit.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                out.append(AuditEntry.model_validate_json(line))
            except ValueError:  # a ValidationError too: torn JSON, or a line that is no event
                continue  # torn by a crash mid-append; the writer starts the next event on a new line
        return out

    def version_of_run(self, run_id: str) -> str | None:
        """The version a run was registered as, if any (one run id, at most one version)."""
        self._settle()
        return self._version_of_run(run_id)

    def _version_of_run(self, run_id: str) -> str | None:
        if not run_id or not self.versions_dir.is_dir():
            return None
        for child in self.versions_dir.iterdir():
            if VERSION_RE.fullmatch(child.name) and (child / VERSION_FILE).is_file():
                try:
                    if self._load_version(child).run_id == run_id:
                        return child.name
                except RegistryError:
                    continue  # damaged: not this run's (listing names it)
        return None

    # ---------------------------------------------------------------- writing

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._holding = True
            try:
                self._repair()
                yield
            finally:
                self._holding = False
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _log(self, action: str, **fields: Any) -> None:
        entry = AuditEntry(
            when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), who=actor(), action=action, **fields
        )
        path = self.root / "audit.log"
        line = json.dumps(entry.json_dict()) + "\n"
        with open(path, "a+b") as handle:  # append-only
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = "\n" + line  # a torn last line: never glue this event onto it
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def _write_pending(self, intent: PendingIntent) -> None:
        tmp = self.root / (PENDING_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(intent.json_dict()))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / PENDING_FILE)

    def _repair(self) -> None:
        """Finish (or undo) a registration a crash interrupted; called with the lock held.

        The intent names the version, its run and the aliases before it. If the version
        directory never appeared, nothing happened: the staging copy is removed. If it did,
        the missing steps run now: the register line, then (when asked) the alias change and
        its promote line. Each step checks whether it already happened, so none runs twice.
        """
        for stale in self.versions_dir.glob(".v*.staging"):
            if not (self.root / PENDING_FILE).exists():
                shutil.rmtree(stale, ignore_errors=True)  # a copy no intent covers
        pending = self.root / PENDING_FILE
        if not pending.exists():
            return
        try:
            intent = PendingIntent.model_validate_json(pending.read_bytes())
            version = validate_name(intent.version)
        except (ValueError, RegistryError):  # ValidationError is a ValueError
            pending.unlink()  # torn before the version could appear (it is written first)
            return
        target = self.versions_dir / version
        if not (target / VERSION_FILE).is_file():
            shutil.rmtree(self.versions_dir / f".{version}.staging", ignore_errors=True)
            pending.unlink()
            return
        events = [e for e in self._read_audit() if e.version == version]
        if not any(e.action == "register" for e in events):
            self._log(
                "register",
                version=version,
                run_id=intent.run_id,
                metrics=intent.metrics,
                **({"parent": intent.parent} if intent.parent else {}),
                repaired=True,
            )
        if intent.promote:
            before, model = intent.aliases_before, intent.model_name
            if self._read_aliases(model).production != version:
                self._set_aliases(_promoted(before, version), model)
            if not any(e.action == "promote" for e in events):
                self._log(
                    "promote",
                    version=version,
                    replaced=before.production,
                    run_id=intent.run_id,
                    metrics=intent.metrics,
                    reason=intent.reason,
                    repaired=True,
                )
        pending.unlink()

    _KEEP = object()

    def _aliases_now(self) -> Aliases:
        self._settle()
        return self._read_aliases()

    def _read_aliases(self, model: Any = _KEEP) -> Aliases:
        path = self._aliases_file(self.model if model is Registry._KEEP else model)
        if not path.exists():
            return Aliases()
        try:
            return Aliases.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise RegistryError(f"{path} is damaged, not an alias table: {first_problem(exc)}") from None

    def _set_aliases(self, aliases: Aliases, model: Any = _KEEP) -> None:
        path = self._aliases_file(self.model if model is Registry._KEEP else model)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("aliases.json.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(aliases.json_dict(), indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # atomic: readers never see half a file

    def register(
        self,
        package_dir: str | Path,
        info: ReleaseInfo | dict[str, Any],
        promote: bool = True,
        guard: Callable[[VersionRecord | None], str | None] | None = None,
        source: dict[str, Any] | None = None,
    ) -> str:
        """Copy a verified package in as the next version; by default make it production.

        `source` (a DeploymentResult's ReleaseSource, dumped): the loadable model a later `--from`
        continues from, copied into the version's `source/` folder beside the package (so what
        the package serves is unchanged) and hash-checked like the package's files; version.json
        records each file's SHA-256 under `source`.

        Idempotent per `info.run_id`: a run already registered gets its version back (a
        resumed run finishes its own registration, never adds a second one). `guard` sees the
        current production version's record (None if none) under the lock and returns a
        refusal reason or None, so two concurrent releases cannot both pass a comparison with
        the same production version.
        """
        from ml_expert.tools.deployment.manifest import PackageManifest

        package = Path(package_dir)
        info = ReleaseInfo.model_validate(info if isinstance(info, dict) else info.json_dict())
        manifest = PackageManifest.read(package)
        with self._locked():
            existing = self._version_of_run(info.run_id or "")
            if existing:
                return existing
            if guard is not None:
                current = self._read_aliases().production
                refusal = guard(self._load_version(self.versions_dir / current) if current else None)
                if refusal:
                    raise ReleaseRefused(refusal)
            numbers = [int(p.name[1:]) for p in self.versions_dir.iterdir() if VERSION_RE.fullmatch(p.name)]
            version = f"v{max(numbers, default=0) + 1}"
            target = self.versions_dir / version
            staging = self.versions_dir / f".{version}.staging"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(package, staging)
            for name, digest in manifest.files.items():
                if _sha256(staging / name) != digest:
                    shutil.rmtree(staging)
                    raise RegistryError(f"{name} changed while it was copied into the registry")
            kept = self._copy_source(source, staging) if source else None
            record = VersionRecord.model_validate(
                {  # the registry's own fields win over anything the caller's info carries
                    **{k: v for k, v in info.json_dict().items() if k not in ("aliases", "path")},
                    "model_name": self.model,
                    "version": version,
                    "registered": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "registered_by": actor(),
                    **({"source": kept} if kept else {}),
                }
            )
            (staging / VERSION_FILE).write_text(json.dumps(record.json_dict(), indent=2))
            reason = "released by the pipeline"
            self._write_pending(
                PendingIntent(
                    version=version,
                    run_id=info.run_id,
                    metrics=info.metrics,
                    parent=info.parent,
                    promote=promote,
                    model_name=self.model,
                    aliases_before=self._read_aliases(),
                    reason=reason,
                )
            )
            _crash_point("registry.before_version")
            os.replace(staging, target)
            _crash_point("registry.after_version")
            self._log(
                "register",
                version=version,
                run_id=info.run_id,
                metrics=info.metrics,
                **({"parent": info.parent} if info.parent else {}),
            )
            _crash_point("registry.after_register_line")
            if promote:
                self._promote(version, reason=reason)
            (self.root / PENDING_FILE).unlink()
        return version

    @staticmethod
    def _copy_source(source: dict[str, Any], staging: Path) -> SourceRecord:
        """Copy the source files into `staging/source/`, each checked against its recorded SHA-256;
        returns what version.json records (kind, file name -> SHA-256, config)."""
        folder = staging / SOURCE_DIR
        folder.mkdir()
        digests: dict[str, str] = {}
        for name, path in source["files"].items():
            if Path(name).name != name or name in ("", ".", ".."):
                shutil.rmtree(staging)
                raise RegistryError(f"source file name {name!r} must be a plain file name")
            shutil.copyfile(path, folder / name)
            digest = _sha256(folder / name)
            if digest != source["sha256"][name]:
                shutil.rmtree(staging)
                raise RegistryError(
                    f"source file {name} does not match the SHA-256 recorded when it was exported"
                )
            digests[name] = digest
        return SourceRecord(kind=source["kind"], files=digests, config=source.get("config"))

    def _promote(self, version: str, reason: str) -> dict[str, str]:
        """Make `version` production of its own model (the one in its version.json)."""
        info = self._load_version(self.path(version))
        model = info.model_name
        if model != self.model:
            raise RegistryError(
                f"{version} belongs to model {model or '(unnamed)'}, not {self.model or '(unnamed)'}; "
                f"use --model-name {model}"
                if model
                else f"{version} belongs to the unnamed model"
            )
        aliases = self._read_aliases()
        if aliases.production == version:
            raise RegistryError(f"{version} is already production")
        new = _promoted(aliases, version)
        self._set_aliases(new)
        _crash_point("registry.after_alias")
        self._log(
            "promote",
            version=version,
            replaced=aliases.production,
            run_id=info.run_id,
            metrics=info.metrics,
            reason=reason,
        )
        return new.json_dict()

    def promote(self, name: str) -> dict[str, str]:
        with self._locked():
            version = self.resolve(name)
            return self._promote(version, reason="promoted by hand")

    def rollback(self) -> dict[str, str]:
        """Point production back at previous; the version rolled back from becomes previous."""
        with self._locked():
            aliases = self._read_aliases()
            if not aliases.previous:
                raise RegistryError("nothing to roll back to: no previous version")
            new = Aliases(production=aliases.previous, previous=aliases.production)
            self._set_aliases(new)
            info = self._load_version(self.path(aliases.previous))
            self._log(
                "rollback",
                version=aliases.previous,
                replaced=aliases.production,
                run_id=info.run_id,
                metrics=info.metrics,
            )
            return new.json_dict()


def _promoted(aliases: Aliases, version: str) -> Aliases:
    """The aliases after `version` becomes production: the production it replaces becomes previous
    (the keys in the order the file has always had, extra ones kept)."""
    new = aliases.model_copy(update={"production": version})
    if aliases.production:
        new = new.model_copy(update={"previous": aliases.production})
    return Aliases.model_validate(new.json_dict())


def _naming(aliases: Aliases, version: str) -> list[str]:
    """The aliases that name `version`."""
    return [alias for alias, named in aliases.json_dict().items() if named == version]
