"""Independent fits as Ray tasks: connect to a cluster (or start a throw-away local one), send the
data once, run each fit as a plain single-process task, retry a task lost with its worker.

Imported only with `--ray`: a run without it never imports Ray.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import ray
from ray.exceptions import RayError, RayTaskError, TaskCancelledError

from ml_expert.errors import TrainingError, UsageError
from ml_expert.execution.address import resolve_address
from ml_expert.tools.execution_report import ClusterInfo, ExecutionReport, Retry

log = logging.getLogger("ml_expert.execution")
ProgressSink = Callable[[ExecutionReport], None]

PROBE_TIMEOUT_S = 5.0  # a TCP connect to the head before ray.init, so a dead address fails fast
POLL_S = 0.5
MAX_PLAN_SCALE = 8


def plan_scale(nodes: int) -> tuple[int, str]:
    """The rule by which count-based plans grow with the cluster: one machine's plan per node
    (nodes with CPUs at the start, at most MAX_PLAN_SCALE). The same cluster buys the same search."""
    scale = max(1, min(nodes, MAX_PLAN_SCALE))
    return scale, (
        f"{nodes} node(s) with CPUs at the start -> the search plans {scale}x one machine's trials "
        f"(one machine's plan per node, at most {MAX_PLAN_SCALE}x)"
    )


def _probe(address: str) -> None:
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _run_task(fn: Callable[[Any, Any], Any], spec: Any, structure: Any, *leaves: Any) -> tuple[Any, str]:
    """The task body on a worker: rebuild the shared data from the object store, run the plain fit."""
    result = fn(spec, _rebuild(structure, leaves))
    return result, ray.get_runtime_context().get_node_id()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _flatten(value: Any, leaves: list[Any]) -> Any:
    """Tuples are opened down to their leaves (frames, arrays), so a leaf shared by two maps is put once."""
    if isinstance(value, tuple):
        return tuple(_flatten(v, leaves) for v in value)
    leaves.append(value)
    return len(leaves) - 1


def _rebuild(structure: Any, leaves: Sequence[Any]) -> Any:
    if isinstance(structure, tuple):
        return tuple(_rebuild(s, leaves) for s in structure)
    return leaves[structure]


class RayExecutor:
    """Maps a plain function over specs as Ray tasks, with bounded retries and bounded waits."""

    def __init__(
        self,
        address: str,
        *,
        max_retries: int = 2,
        stall_timeout: float = 600.0,
        on_progress: ProgressSink | None = None,
    ) -> None:
        self.address = resolve_address(address)
        self.max_retries = max_retries
        self.stall_timeout = stall_timeout
        self.on_progress = on_progress
        self._temp_dir: str | None = None
        self._owns_connection = False  # ray.init made here (not the caller's own connection)
        self._puts: dict[int, tuple[Any, Any]] = {}  # id(leaf) -> (leaf kept alive, ObjectRef)
        self._names: dict[str, str] = {}
        connecting = time.perf_counter()
        started_here = self._connect()
        self.report = ExecutionReport(
            mode="ray", cluster=self._cluster_info(started_here), max_retries=max_retries
        )
        cluster = self.report.cluster
        cluster.connect_seconds = round(time.perf_counter() - connecting, 2)
        if cluster.cpus < 1:
            self.close()
            raise TrainingError(
                f"the Ray cluster at {self.address} offers {cluster.cpus:g} CPUs: a fit needs at least one"
            )
        self.report.plan_scale, self.report.plan_scale_rule = plan_scale(cluster.nodes)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_run_task)

    # -- connection -------------------------------------------------------------------------
    def _connect(self) -> bool:
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        if ray.is_initialized():  # the caller connected this process already: use it, leave it open
            return False
        try:
            if self.address == "local":
                self._temp_dir = tempfile.mkdtemp(prefix="ml-expert-ray-")
                self._owns_connection = True
                ray.init(include_dashboard=False, _temp_dir=self._temp_dir, **quiet)
                return True
            _probe(self.address)
            self._owns_connection = True
            ray.init(address=self.address, **quiet)
            return False
        except UsageError:
            raise
        except Exception as exc:  # refused token, version mismatch, a port that is not Ray...
            self.close()
            raise UsageError(
                f"cannot connect to the Ray cluster at {self.address}: {_first_line(exc)}"
            ) from None

    def _cluster_info(self, started_here: bool) -> ClusterInfo:
        total = ray.cluster_resources()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        for n in nodes:
            host = n.get("NodeName") or n.get("NodeManagerAddress") or "?"
            self._names[n["NodeID"]] = f"{host} ({n['NodeID'][:8]})"
        return ClusterInfo(
            address=self.address,
            started_here=started_here,
            nodes=sum(1 for n in nodes if n.get("Resources", {}).get("CPU", 0) > 0),
            cpus=float(total.get("CPU", 0)),
            gpus=float(total.get("GPU", 0)),
            memory_gb=round(total.get("memory", 0) / 2**30, 2),
            object_store_gb=round(total.get("object_store_memory", 0) / 2**30, 2),
            ray_version=ray.__version__,
        )

    def _node_name(self, node_id: str) -> str:
        if node_id not in self._names:
            for n in ray.nodes():
                host = n.get("NodeName") or n.get("NodeManagerAddress") or "?"
                self._names[n["NodeID"]] = f"{host} ({n['NodeID'][:8]})"
        return self._names.get(node_id, node_id[:8])

    def _share(self, shared: Any) -> tuple[Any, list[Any]]:
        """Each leaf of the shared data goes to the object store once per run, never once per task."""
        leaves: list[Any] = []
        structure = _flatten(shared, leaves)
        refs = []
        for leaf in leaves:
            if id(leaf) not in self._puts:
                self._puts[id(leaf)] = (leaf, ray.put(leaf))
                self.report.data_puts += 1
            refs.append(self._puts[id(leaf)][1])
        return structure, refs

    # -- the map ----------------------------------------------------------------------------
    def map(
        self,
        fn: Callable[[Any, Any], Any],
        specs: Sequence[Any],
        shared: Any,
        *,
        label: str = "",
        time_limit: float | None = None,
        keep_first: int = 1,
    ) -> list[Any | None]:
        """One result per spec, in order. A task lost with its worker or node is submitted again, at
        most max_retries times; an error raised by the fit itself is raised here, not retried. A
        spec still running at time_limit (after the first keep_first finished) gives None."""
        self.report.batches.append(label)
        structure, refs = self._share(shared)
        pending: dict[Any, tuple[int, int]] = {}

        def submit(index: int, attempt: int) -> None:
            pending[self._remote.remote(fn, specs[index], structure, *refs)] = (index, attempt)

        for index in range(len(specs)):
            submit(index, 1)
        results: list[Any | None] = [None] * len(specs)
        retried: dict[int, Retry] = {}
        finished = [False] * len(specs)
        started = last_progress = time.monotonic()
        try:
            while pending:
                self.report.tasks_in_flight = len(pending)
                now = time.monotonic()
                if time_limit is not None and now - started > time_limit and all(finished[:keep_first]):
                    break  # the safety stop: what is still running is cancelled below
                if now - last_progress > self.stall_timeout:
                    raise TrainingError(
                        f"no {label or 'task'} finished on the Ray cluster at {self.address} in "
                        f"{self.stall_timeout:g} s ({len(pending)} waiting): too few resources or lost nodes"
                    )
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    index, attempt = pending.pop(ref)
                    try:
                        result, node_id = ray.get(ref, timeout=self.stall_timeout)
                    except RayTaskError as exc:  # the fit itself raised: same error as in-process
                        raise exc.as_instanceof_cause() from None
                    except RayError as exc:  # worker or node lost: the same spec again
                        cause = _first_line(exc)
                        if attempt > self.max_retries:
                            raise TrainingError(
                                f"{label or 'a task'} #{index} failed {attempt} times on the Ray cluster "
                                f"(max_retries={self.max_retries}); last cause {cause}"
                            ) from None
                        retry = Retry(
                            label=label, index=index, attempt=attempt, cause=cause, detected_at=time.time()
                        )
                        self.report.retries.append(retry)
                        retried[index] = retry
                        log.warning("retrying %s #%d after %s", label, index, cause)
                        submit(index, attempt + 1)
                        continue
                    results[index], finished[index] = result, True
                    if index in retried:
                        retried[index].recovered_at = time.time()
                    node = self._node_name(node_id)
                    self.report.tasks_per_node[node] = self.report.tasks_per_node.get(node, 0) + 1
                    self.report.tasks_done += 1
                    last_progress = time.monotonic()
                    self.report.tasks_in_flight = len(pending)
                    if self.on_progress:
                        self.on_progress(self.report)
        finally:
            for ref in pending:
                with contextlib.suppress(RayError, TaskCancelledError, ValueError):
                    ray.cancel(ref, force=True)
            self.report.tasks_in_flight = 0
        return results

    def close(self) -> None:
        """Disconnect; a cluster this run started is stopped and its files removed."""
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
        self._owns_connection = False
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
