"""The graph's state: JSON-serialisable summaries and file paths, never arrays or models.

Large things live in the run directory; the state only points at them, so the checkpointer
stays small and a resumed run reads the same files.
"""

from __future__ import annotations

from typing import Annotated, Any

from typing_extensions import TypedDict  # pydantic (LangGraph schemas) needs it on Python < 3.12

from ml_expert.config import RunConfig


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


# What a caller may put under `options`: RunConfig's fields, typed for LangGraph's input schema.
# Derived, not declared: RunConfig (ml_expert.config) holds each option's default and validation,
# applied once by the `init` node. The state then keeps `RunConfig(...).options()` (plain JSON).
RunOptions = TypedDict(  # type: ignore[misc]
    "RunOptions", {name: field.annotation for name, field in RunConfig.model_fields.items()}, total=False
)


class MLInput(TypedDict, total=False):
    """What a caller gives: the data, the target and the options.

    `data` and `target` may be given at the top level (a parent graph's own keys) or inside
    `options`; `init` folds them into the options and hands the `data` channel to the phases.
    """

    data: Any
    target: str
    options: RunOptions
    run_id: str


class MLState(TypedDict, total=False):
    options: RunOptions
    run_id: str
    run_dir: str
    phase: str
    status: str
    reason: str | None
    data: dict[str, Any]
    selection: dict[str, Any]
    training: dict[str, Any]
    validation: dict[str, Any]
    deployment: dict[str, Any]
    gates: Annotated[dict[str, Any], merge_dicts]
    target: str
    metrics: dict[str, Any]
    artifacts: dict[str, str]
    approval: dict[str, Any]
    retries: Annotated[dict[str, int], merge_dicts]


class MLOutput(TypedDict, total=False):
    """What a caller gets back: narrow, with no list key a parent's reducer could duplicate."""

    run_id: str
    run_dir: str
    status: str
    reason: str | None
    metrics: dict[str, Any]
    artifacts: dict[str, str]
