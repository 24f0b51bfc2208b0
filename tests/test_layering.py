"""Dependencies point one way (DESIGN.md, layout): a tool never knows it runs inside a graph, nor
on which executor. Every module under ml_expert/tools/ imports, of ml_expert, only other tools and
a few leaf modules that themselves import no more than the standard library, numpy, pydantic and
each other:

- `ml_expert.errors`: the exceptions a tool raises, with the exit codes the CLI documents;
- `ml_expert.hashing`: SHA-256 of a file or folder and the check before a load (imports errors);
- `ml_expert.runtime.inference`: the package's own inference module, copied verbatim into every
  package (standard library and numpy only), whose value coercion training must share so that
  training and serving read a value the same way.

Not `ml_expert.config` (the run configuration the interfaces derive from: the metric names it
offers as choices live in tools/metric_names.py), nor `ml_expert.runtime.server` (the package's
web server), nor the phase results or the executors (their records live in tools/ instead).

The walk reads every import statement, at module level, inside functions and under
TYPE_CHECKING alike: a type-only import of a phase result still ties a tool to the graph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ml_expert"
TOOLS = PACKAGE / "tools"
LEAVES = ("ml_expert.errors", "ml_expert.hashing", "ml_expert.runtime.inference")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ml_expert module `path` imports (relative imports resolved), with its line."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    return _imported(path.read_text(encoding="utf-8"), package)


def _imported(source: str, package: list[str]) -> list[tuple[int, str]]:
    """What `source`, a module of `package`, imports of ml_expert."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                # `from ml_expert import hashing` imports the module ml_expert.hashing
                named = f"{module}.{alias.name}"
                found.append((node.lineno, named if _allowed(named) else module))
    return [(line, name) for line, name in found if name == "ml_expert" or name.startswith("ml_expert.")]


def _allowed(name: str) -> bool:
    if name.startswith("ml_expert.tools.") or name == "ml_expert.tools":
        return True
    return any(name == leaf or name.startswith(leaf + ".") for leaf in LEAVES)


def _violations(path: Path) -> list[str]:
    names = {(line, name) for line, name in _imports(path) if not _allowed(name)}
    return [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}" for line, name in sorted(names)]


TOOL_FILES = sorted(TOOLS.rglob("*.py"))


def test_the_walk_sees_every_kind_of_import() -> None:
    """The walk is not blind: an import inside a function, under TYPE_CHECKING, or relative is seen."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ml_expert.phases import Candidate\n"
        "def f():\n"
        "    import ml_expert.graph.gates\n"
        "from ...execution import records\n"
        "from ml_expert import runner\n"
        "from ml_expert.errors import DataError\n"
        "from ..scoring import METRICS\n"
    )
    imported = _imported(source, ["ml_expert", "tools", "validation"])
    found = {name for _, name in imported if not _allowed(name)}
    # the package itself (`from ml_expert import runner`) is above the tools too
    assert found == {"ml_expert.phases", "ml_expert.graph.gates", "ml_expert.execution", "ml_expert"}


def test_there_are_tools_to_check() -> None:
    assert len(TOOL_FILES) > 50


@pytest.mark.parametrize("path", TOOL_FILES, ids=lambda p: str(p.relative_to(TOOLS)))
def test_a_tool_imports_only_tools_and_leaves(path: Path) -> None:
    assert _violations(path) == []


@pytest.mark.parametrize("leaf", LEAVES)
def test_the_leaves_are_leaves(leaf: str) -> None:
    """A leaf imports nothing of ml_expert but other leaves: allowing it allows nothing above."""
    path = PACKAGE.parent / (leaf.replace(".", "/") + ".py")
    above = [
        name for _, name in _imports(path) if not any(name == x or name.startswith(x + ".") for x in LEAVES)
    ]
    assert above == []
    # and the package a leaf sits in runs nothing when imported (ml_expert.runtime/__init__.py)
    for parent in Path(leaf.replace(".", "/")).parents:
        init = PACKAGE.parent / parent / "__init__.py"
        if parent != Path(".") and parent != Path("ml_expert") and init.exists():
            assert _imports(init) == [], f"{init} imports ml_expert modules"
