"""The registry's files as models: version.json, aliases.json, an audit.log line, pending.json, and
the candidate a release is compared by. Read with `model_validate`, written with `json_dict()`
(the keys that were given, in the order the files have always had), so a registry written by an
earlier version loads and a new one is byte-for-byte what the dicts wrote.

Unknown keys are kept (`extra="allow"`), never refused: a workspace's registry is shared by every
ml-expert version that releases into it, and an older one must neither refuse nor erase what a
newer one recorded. A missing or misspelt key reads as None where it is optional, which the
comparison treats as "not comparable" or "worse", never as a pass; a required one (a version's
`version`, an audit line's `action`) or a wrong type is refused, the file named (RegistryError).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    """A registry file's record: unknown keys kept, written with only the keys that were set."""

    model_config = ConfigDict(extra="allow")

    def json_dict(self) -> dict[str, Any]:
        """The JSON object the file holds: the keys given (None included when given), in order."""
        return self.model_dump(mode="json", exclude_unset=True)


class ReleaseInfo(Record):
    """What the releasing run tells the registry (version.json's first keys, in this order)."""

    run_id: str | None = None
    model: str | None = None
    task: str | None = None
    primary_metric: str | None = None
    test_score: float | None = None
    metrics: dict[str, Any] | None = None
    data_fingerprint: str | None = None
    seed: int | None = None
    split_sizes: dict[str, int] | list[int] | None = None
    forced: bool | None = None
    parent: str | None = None


class SourceRecord(BaseModel):
    """A version's `source/` folder: the loadable model `--from` continues from (not served)."""

    kind: str
    files: dict[str, str]  # file name -> SHA-256
    config: dict[str, Any] | None = None


class VersionRecord(ReleaseInfo):
    """version.json: the release info, then what the registry adds. `aliases` and `path` are what a
    reader is told (its model's aliases naming it, its folder), never written to the file."""

    model_name: str | None = None
    version: str
    registered: str | None = None
    registered_by: str | None = None
    source: SourceRecord | None = None
    aliases: list[str] = Field(default_factory=list, exclude=True)
    path: str | None = Field(default=None, exclude=True)

    def view(self) -> dict[str, Any]:
        """What `models list` / `models show` / MCP print: the file's keys plus aliases (and path)."""
        out = {**self.json_dict(), "aliases": self.aliases}
        out.setdefault("model_name", None)
        if self.path is not None:
            out["path"] = self.path
        return out


class Aliases(Record):
    """aliases.json: the version each alias of one model names."""

    production: str | None = None
    previous: str | None = None

    def json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class AuditEntry(Record):
    """One audit.log line; `when`, `who`, `action` first, then the event's own keys."""

    when: str | None = None
    who: str | None = None
    action: str
    version: str | None = None
    replaced: str | None = None
    run_id: str | None = None
    metrics: dict[str, Any] | None = None
    parent: str | None = None
    reason: str | None = None
    repaired: bool | None = None


class PendingIntent(Record):
    """pending.json: the registration in progress, written before the version folder appears."""

    version: str
    run_id: str | None = None
    metrics: dict[str, Any] | None = None
    parent: str | None = None
    promote: bool = True
    model_name: str | None = None
    aliases_before: Aliases = Field(default_factory=Aliases)
    reason: str | None = None


class ReleaseCandidate(BaseModel):
    """What the production comparison needs from a run: its held-out rows, metric and score."""

    data_fingerprint: str | None = None
    seed: int | None = None
    split_sizes: dict[str, int] | list[int] | None = None
    primary_metric: str | None = None
    test_score: float | None = None
    force: bool = False
