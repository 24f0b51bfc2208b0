"""A fake `claude-flow` CLI on PATH, for the fast tests of the bridge and of `setup claude`.

The fake answers like claude-flow 3.43's CLI, as read in its source and checked against the real
one (tests/test_claude_flow_real.py): `--version` prints `ruflo v3.43.0`; `memory init` creates
`.swarm/memory.db`; `memory store` takes `--tags`; `memory import -i FILE` reads a
`ruflo-memory-export/v1` document whose entries carry `value`; `memory export -o FILE -n NS`
writes one; `memory retrieve --format json` prints the entry with the value under `content`
(after a [WARN] line, as the real one may). It keeps its entries in a JSON file, logs every
call, and can be told to be a 2.x CLI, to be uninitialised, or to corrupt one key.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

FAKE = r"""#!{python}
import json, os, sys, time
db_path, log_path = os.environ["FAKE_CF_DB"], os.environ["FAKE_CF_LOG"]
argv = sys.argv[1:]
with open(log_path, "a") as fh:
    fh.write(json.dumps({{"argv": argv, "cwd": os.getcwd()}}) + "\n")

def flag(short, long, default=None):
    for name in (short, long):
        if name and name in argv:
            return argv[argv.index(name) + 1]
    return default

if argv == ["--version"]:
    print("ruflo v" + os.environ.get("FAKE_CF_VERSION", "3.43.0")); sys.exit(0)
if argv[:2] == ["memory", "init"]:
    os.makedirs(".swarm", exist_ok=True); open(".swarm/memory.db", "w").close()
    print("[OK] initialised"); sys.exit(0)
if os.environ.get("FAKE_CF_UNINITIALISED") and argv[:2] in (["memory", "store"], ["memory", "import"]):
    print("[ERROR] Database not initialized. Run: claude-flow memory init"); sys.exit(1)
import fcntl
lock = open(db_path + ".lock", "a")
fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time, as native SQLite
db = json.load(open(db_path)) if os.path.exists(db_path) else {{}}

def put(ns, key, value, tags):
    corrupt = os.environ.get("FAKE_CF_CORRUPT")
    if corrupt and corrupt in key:
        value = value.replace("}}", ', "tampered": true}}', 1)
    db[ns + "/" + key] = {{"key": key, "namespace": ns, "content": value, "tags": tags}}

if argv[:2] == ["memory", "store"]:
    key, value, ns = flag("-k", "--key"), flag(None, "--value"), flag("-n", "--namespace", "default")
    tags = [t for t in (flag(None, "--tags") or "").split(",") if t]
    put(ns, key, value, tags)
    print("[OK] Data stored successfully")
elif argv[:2] == ["memory", "import"]:
    doc = json.load(open(flag("-i", "--input")))
    for e in doc["entries"]:
        value = e["value"] if isinstance(e.get("value"), str) else json.dumps(e.get("value"))
        put(flag("-n", "--namespace") or e.get("namespace", "default"), e["key"], value, [])
    print("[OK] Imported")
elif argv[:2] == ["memory", "export"]:
    ns = flag("-n", "--namespace")
    entries = [{{"key": e["key"], "namespace": e["namespace"], "value": e["content"]}}
               for e in db.values() if ns is None or e["namespace"] == ns]
    json.dump({{"schema": "ruflo-memory-export/v1", "count": len(entries), "entries": entries}},
              open(flag("-o", "--output"), "w"))
    print("[OK] Exported")
elif argv[:2] == ["memory", "retrieve"]:
    entry = db.get(flag("-n", "--namespace", "default") + "/" + flag("-k", "--key"))
    if entry is None:
        print("[WARN] Key not found"); sys.exit(1)
    print("[WARN] Skipped helper auto-refresh")
    print(json.dumps(entry, indent=2))
elif argv[:1] == ["hooks"]:
    print("[OK] hook recorded")
else:
    print("unknown command", argv, file=sys.stderr); sys.exit(2)
json.dump(db, open(db_path, "w"))
"""


@pytest.fixture
def fake_claude_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "claude-flow"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    paths = {"exe": exe, "db": tmp_path / "cf-db.json", "log": tmp_path / "cf-calls.jsonl"}
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CF_DB", str(paths["db"]))
    monkeypatch.setenv("FAKE_CF_LOG", str(paths["log"]))
    for name in ("ML_EXPERT_CLAUDE_FLOW_BIN", "ML_EXPERT_CLAUDE_FLOW_SYNC", "FAKE_CF_VERSION"):
        monkeypatch.delenv(name, raising=False)
    return paths


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []


def db(paths: dict[str, Path]) -> dict[str, dict]:
    return json.loads(paths["db"].read_text())
