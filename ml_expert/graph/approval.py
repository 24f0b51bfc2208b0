"""Human (or agent) approval before deployment: a LangGraph interrupt, resumed with `Command`.

With `options.require_approval` the node records `awaiting_approval` in run.json and calls
`interrupt()`; the checkpointer keeps the run's state until `ml-expert approve RUN_ID` (or the
MCP tool `approve_deployment`) resumes the same thread with `Command(resume={...})`. On resume
LangGraph runs this node again from its start and `interrupt()` returns the decision.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from langgraph.types import interrupt
from pydantic import ValidationError

from ml_expert.config import RunConfig
from ml_expert.errors import first_problem
from ml_expert.phases import ValidationResult
from ml_expert.runs import ApprovalDecision, ApprovalRecord, RunFile, RunStatus


def approval(state: dict[str, Any]) -> dict[str, Any]:
    if not RunConfig.of(state).require_approval:
        return {}
    path = Path(state["run_dir"])
    # On resume LangGraph re-runs this node from its start: a run being approved says `approving`
    # and must not flip back to awaiting_approval while the decision is read (pollers stop there).
    run = RunFile(path)
    if run.read().status != RunStatus.APPROVING:
        run.await_approval()
    request = {
        "run_id": state["run_id"],
        "question": "deploy this model?",
        "metrics": ValidationResult.of(state).numeric_metrics,
    }
    answer = interrupt(request)
    answer = answer if isinstance(answer, dict) else {"approved": answer}  # Command(resume=True)
    try:
        decision = ApprovalDecision.model_validate(answer)
    except ValidationError as exc:  # a decision that does not say yes: not approved, the field named
        decision = ApprovalDecision(approved=False, note=f"unreadable decision ({first_problem(exc)})")
    record = ApprovalRecord(
        approved=decision.approved,
        by=decision.by or "unknown",
        note=decision.note,
        at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    run.update(status=RunStatus.RUNNING.value, approval=record)
    kept = record.model_dump(mode="json")
    if record.approved:
        return {"approval": kept, "status": RunStatus.RUNNING.value}
    reason = "deployment not approved" + (f": {record.note}" if record.note else "")
    return {"approval": kept, "status": RunStatus.REFUSED.value, "reason": reason}


def after_approval(state: dict[str, Any]) -> Literal["deployment", "finish"]:
    record = ApprovalRecord.maybe(state)
    approved = record.approved if record else True
    return "deployment" if approved and state.get("status") != RunStatus.REFUSED else "finish"
