"""A gate's typed verdict: passed, each check with its figure, and what failed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Check(BaseModel):
    name: str
    passed: bool
    value: Any = None
    threshold: Any = None
    detail: str = ""


class GateVerdict(BaseModel):
    gate: str
    passed: bool
    checks: list[Check]
    failed: list[str]

    @classmethod
    def of(cls, state: dict[str, Any], gate: str) -> GateVerdict | None:
        """The gate's verdict in the graph's state (None before the gate ran), validated: a verdict
        without `passed` is refused instead of routing as a refusal by default."""
        raw = (state.get("gates") or {}).get(gate)
        return None if raw is None else cls.model_validate(raw)

    @classmethod
    def from_checks(cls, gate: str, checks: list[Check]) -> GateVerdict:
        failed = [f"{c.name}: {c.detail}" for c in checks if not c.passed]
        return cls(gate=gate, passed=not failed, checks=checks, failed=failed)
