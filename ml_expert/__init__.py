"""ml-expert: a dataset in, a validated and deployable model out.

`run` and `build_graph` are imported lazily so that `import ml_expert` (and the CLI) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["run", "build_graph", "__version__"]

if TYPE_CHECKING:
    from ml_expert.graph.builder import build_graph
    from ml_expert.runner import run


def __getattr__(name: str) -> Any:
    if name == "run":
        from ml_expert.runner import run

        return run
    if name == "build_graph":
        from ml_expert.graph.builder import build_graph

        return build_graph
    raise AttributeError(f"module 'ml_expert' has no attribute {name!r}")
