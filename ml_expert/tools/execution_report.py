"""What an executor tells the run about where its fits ran: typed, JSON in run.json and the report."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ClusterInfo(BaseModel):
    """The hardware check at connection: what the cluster offered when the run started."""

    model_config = ConfigDict(extra="forbid")

    address: str
    started_here: bool  # a throw-away local cluster this run started (and stops)
    nodes: int
    cpus: float
    gpus: float
    memory_gb: float
    object_store_gb: float
    ray_version: str
    connect_seconds: float = 0.0  # starting (local) or joining the cluster: not counted in the budget


class Retry(BaseModel):
    """A task lost with its worker or node and submitted again (same spec, same seed: same result)."""

    model_config = ConfigDict(extra="forbid")

    label: str
    index: int
    attempt: int  # the attempt that failed (1 = the first)
    cause: str
    detected_at: float = 0.0  # Unix time the loss was seen and the task submitted again
    recovered_at: float | None = None  # Unix time the new attempt's result came back


class ExecutionReport(BaseModel):
    """Where the independent fits ran: counts per node, progress, retries."""

    model_config = ConfigDict(extra="forbid")

    mode: str  # "local" (this process) or "ray"
    cluster: ClusterInfo | None = None
    max_retries: int = 0
    tasks_done: int = 0
    tasks_in_flight: int = 0
    tasks_per_node: dict[str, int] = {}
    batches: list[str] = []  # the labels of what was mapped, in order
    retries: list[Retry] = []
    data_puts: int = 0  # objects sent to the cluster's object store (each once per run)
    plan_scale: int = 1
    plan_scale_rule: str = "one machine: the plans as counted for one machine"
