"""A fit that can be stopped: a long candidate runs in a child process with a deadline.

Between fits the wall-clock cap can only decline to start the next one; a fit already running in
this process cannot be interrupted (scikit-learn, LightGBM and OpenMP have no cancel). On 3M rows
with `--budget 20` one random forest ran 145 s and no cap fired (#17). So a candidate the nominal
count rule calls long for the budget (LONG_FIT_SHARE, LONG_FIT_MIN_S: a count, the same decision
on any machine) runs in a fresh 'spawn' child process; past what is left of the budget the child
and anything it started are ended, and the candidate is recorded as stopped (StoppedFit, with the
nominal cost, the deadline and the seconds spent). Small fits stay in this process, with no
overhead.

No child outlives the call: it is ended in a `finally` (an exception, Ctrl-C), it sits in its own
session (the terminal's Ctrl-C reaches the parent, which ends it), and it exits by itself when its
parent dies without ending it (kill -9).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from pydantic import BaseModel

from ml_expert.errors import TrainingError
from ml_expert.tools.selection.budget import RESERVE_SHARE
from ml_expert.tools.selection.verdicts import StoppedFit

LONG_FIT_SHARE = 0.25
"""A candidate whose nominal cost is above this share of the budget runs where it can be stopped.
The nominal rule is a count, and at scale it can be off by several times (a forest it sized for
seconds of a 20 s budget can spend minutes on the all-row passes); a fit it puts at a quarter of
the budget can then take all of it. Below that share, declining to start the next fit (the cap
between fits) bounds the overrun."""
LONG_FIT_MIN_S = 5.0
"""...and above this many nominal seconds: starting a child (a fresh interpreter importing
scikit-learn, the data copied to it) itself costs a second or more, so a shorter fit is cheaper to
let finish. Small data never pays for a process, whatever the budget."""
NEVER_STOPPED: tuple[str, ...] = ("dummy",)  # the reference every comparison needs: always in-process
STOP_GRACE_S = 2.0  # after SIGTERM, before SIGKILL
PARENT_CHECK_S = 0.5  # how often a child looks whether its parent is still there
REFIT_SLACK = 2.0
"""The refit on train + validation of a long candidate may run this many times the chosen model's
own measured fit (scaled to the refit's rows), or what is left of the budget if that is more. The
model that ships is worth a bounded overrun, but a refit far slower than the fit that won is no
longer that fit (memory pressure at scale): the train-only fit, which was judged, ships instead."""


class FitCap(BaseModel):
    """Why a candidate runs in a child, and when the budget it may use ends."""

    nominal_seconds: float
    ends_at: float  # Unix time the model-selection budget (less the reserve) runs out
    rule: str


def selection_ends_at(budget: float, spent: float) -> float:
    """Unix time at which model selection has used the budget less the reserve kept for saving and
    scoring (budget.safety_cap's figure, as a time: a fit on a Ray worker reads it too)."""
    return time.time() + budget * (1 - RESERVE_SHARE) - spent


def nominal_candidate_seconds(
    base: str,
    train_rows: int,
    features_out: int,
    classes: int | None,
    params: dict[str, Any] | None = None,
    cv_rows: int = 0,
    folds: int = 0,
    tuned: bool = False,
    sized_rows: int | None = None,
) -> float:
    """The candidate's cost by the nominal count rule (tuning.nominal_fit_seconds), priced the way
    the candidate is fit: at the defaults, or at the search space's SEARCH_COST when `tuned` (a
    sampled configuration); its fit on `train_rows` plus, on small data, its `folds`
    cross-validation fits on train + validation (`cv_rows`). LightGBM with its rounds known (the
    early-stopped search's, in `params`) is priced per round. A forest counts the trees it grows:
    its `params`' n_estimators (sized by its share of the budget), else forest_size of the rows it
    was sized by (`sized_rows`, the training split, when the fit sees more rows: the refit), each
    grown on its max_samples rows (`params`', else forest_limits') when fewer than all.

    The one pricing of a candidate's fit: the long-fit cap here and the ensemble's refit use it."""
    from ml_expert.tools.selection.candidates import forest_limits, forest_size
    from ml_expert.tools.selection.tuning import nominal_fit_seconds

    trees = samples = None
    if base == "random_forest":
        trees = (params or {}).get("n_estimators") or forest_size(sized_rows or train_rows)
        samples = (params or {}).get("max_samples") or forest_limits(sized_rows or train_rows).get(
            "max_samples"
        )
    rounds = (params or {}).get("n_estimators") if base == "lightgbm" else None  # known: no search

    def one(rows: int) -> float:
        return nominal_fit_seconds(
            base,
            rows,
            features_out,
            classes,
            at_defaults=not tuned,
            trees=trees,
            rounds=rounds,
            samples=samples,
        )

    total = one(train_rows)
    if folds:
        total += folds * one(max(1, cv_rows * (folds - 1) // folds))
    return total


def plan_cap(
    base: str,
    budget: float | None,
    ends_at: float | None,
    train_rows: int,
    features_out: int,
    classes: int | None,
    params: dict[str, Any] | None = None,
    cv_rows: int = 0,
    folds: int = 0,
) -> FitCap | None:
    """A FitCap when the candidate is long for the budget (it then runs in a child), else None."""
    if budget is None or ends_at is None or base in NEVER_STOPPED:
        return None
    nominal = nominal_candidate_seconds(base, train_rows, features_out, classes, params, cv_rows, folds)
    limit = max(LONG_FIT_SHARE * budget, LONG_FIT_MIN_S)
    if nominal <= limit:
        return None
    rule = (
        f"nominal cost {nominal:.1f} s > max({LONG_FIT_SHARE:.0%} of the {budget:g} s budget, "
        f"{LONG_FIT_MIN_S:g} s) = {limit:.1f} s: it runs in a child process stopped when the budget "
        f"(less the {RESERVE_SHARE:.0%} reserve) runs out"
    )
    return FitCap(nominal_seconds=round(nominal, 3), ends_at=ends_at, rule=rule)


def refit_cap(
    base: str,
    budget: float | None,
    left_seconds: float,
    measured_seconds: float,
    rows: int,
    features_out: int,
    classes: int | None,
    params: dict[str, Any] | None = None,
    nominal: float | None = None,
) -> FitCap | None:
    """A FitCap for the chosen model's refit on `rows` (train + validation) when it is long for the
    budget by the same count rule as the candidates (it then runs in a child), else None.
    `measured_seconds`: the chosen model's own fit, already scaled to `rows`; `nominal`: the refit's
    price where the family's own rule cannot give it (an ensemble: its members' refits)."""
    if budget is None or base in NEVER_STOPPED:
        return None
    if nominal is None:
        nominal = nominal_candidate_seconds(base, rows, features_out, classes, params)
    limit = max(LONG_FIT_SHARE * budget, LONG_FIT_MIN_S)
    if nominal <= limit:
        return None
    allowed = max(left_seconds, REFIT_SLACK * measured_seconds)
    rule = (
        f"the refit's nominal cost {nominal:.1f} s > max({LONG_FIT_SHARE:.0%} of the {budget:g} s budget, "
        f"{LONG_FIT_MIN_S:g} s) = {limit:.1f} s: it runs in a child process given {allowed:.1f} s, the "
        f"larger of what is left of the budget ({max(left_seconds, 0.0):.1f} s) and {REFIT_SLACK:g} x the "
        f"chosen fit's {measured_seconds:.1f} s on {rows} rows"
    )
    return FitCap(nominal_seconds=round(nominal, 3), ends_at=time.time() + allowed, rule=rule)


def capped(
    fn: Callable[[Any, Any], Any], spec: Any, data: Any, cap: FitCap, name: str, base: str
) -> Any | StoppedFit:
    """`fn(spec, data)` in a child process until what is left of the budget; a StoppedFit past it."""
    deadline = cap.ends_at - time.time()
    if deadline <= 0:
        return StoppedFit(
            name=name,
            base=base,
            nominal_seconds=cap.nominal_seconds,
            deadline_seconds=round(deadline, 3),
            seconds=0.0,
            started=False,
            reason=(
                f"cap hit before it started: the budget was spent ({-deadline:.1f} s over) and its {cap.rule}"
            ),
        )
    done, result, seconds = run_stoppable(fn, spec, data, deadline, label=name)
    if done:
        return result
    shown = round(deadline, 3)  # one value in the record and its reason (5.5502 -> 5.55 -> "5.5", not "5.6")
    return StoppedFit(
        name=name,
        base=base,
        nominal_seconds=cap.nominal_seconds,
        deadline_seconds=shown,
        seconds=round(seconds, 3),
        started=True,
        reason=f"cap hit: stopped after {seconds:.1f} s at its deadline of {shown:.1f} s; {cap.rule}",
    )


def run_stoppable(
    fn: Callable[[Any, Any], Any], spec: Any, data: Any, deadline: float, label: str = "fit"
) -> tuple[bool, Any, float]:
    """(finished, result, seconds): `fn(spec, data)` in a child process, ended at `deadline` seconds.

    The child is a fresh interpreter (never a fork of this process, which holds threads, sockets
    and OpenMP state), started by subprocess rather than multiprocessing: no resource-tracker
    process is left running, and no one's __main__ is imported again. The work and its result
    travel pickled over two pipes. An error raised by the fit is raised here (the child's
    traceback as a note), as it would be in-process; a child that dies without a result (out of
    memory) is a TrainingError."""
    job_read, job_write = os.pipe()
    result_read, result_write = os.pipe()
    started = time.perf_counter()
    process: subprocess.Popen[bytes] | None = None
    job = Connection(job_write, readable=False)
    result = Connection(result_read, writable=False)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(sys.path), str(job_read), str(result_write)]
            + [str(os.getpid())],
            pass_fds=(job_read, result_write),
            stdin=subprocess.DEVNULL,
            stdout=2,  # its chatter goes where this process's stderr goes, never onto stdout (--json)
            start_new_session=True,  # a Ctrl-C reaches this process, which ends the child
        )
        os.close(job_read)
        os.close(result_write)
        job_read = result_write = -1
        # sent from a thread: a large frame blocks until the child reads it, and the deadline holds
        sender = threading.Thread(target=_send, args=(job, (fn, spec, data)), daemon=True)
        sender.start()
        while True:
            left = deadline - (time.perf_counter() - started)
            if left <= 0:
                return False, None, time.perf_counter() - started
            if not wait([result], timeout=left):
                continue
            try:
                status, payload, child_traceback = result.recv()
            except EOFError:  # the child ended without a result
                process.wait()
                raise TrainingError(
                    f"the process fitting {label} ended with exit code {process.returncode} before its "
                    "result (out of memory?)"
                ) from None
            if status == "ok":
                return True, payload, time.perf_counter() - started
            payload.add_note(f"in the child process fitting {label}:\n{child_traceback}")
            raise payload
    finally:
        if process is not None:
            _end(process)
        for fd in (job_read, result_write):
            if fd >= 0:
                os.close(fd)
        job.close()
        result.close()


_CHILD = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from ml_expert.tools.selection.longfit import _child; _child(*map(int, sys.argv[2:]))"
)


def _send(connection: Connection, message: Any) -> None:
    with contextlib.suppress(OSError):  # the child was ended before it read the job
        connection.send(message)


def _end(process: subprocess.Popen[bytes]) -> None:
    """Stop the child and whatever it started (SIGTERM, then SIGKILL after a grace), and reap it."""
    if process.poll() is None:
        import psutil

        with contextlib.suppress(psutil.Error):
            for grandchild in psutil.Process(process.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    grandchild.kill()
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _child(job_fd: int, result_fd: int, parent: int) -> None:
    """The child's body: read the job, run the fit, send back ("ok", result) or ("error", exception)."""

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)  # the parent died without ending this child (kill -9): nobody waits for the fit

    threading.Thread(target=orphaned, daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this child ends
    writer = Connection(result_fd, readable=False)
    with Connection(job_fd, writable=False) as reader:
        fn, spec, data = reader.recv()
    try:
        message: tuple[str, Any, str] = ("ok", fn(spec, data), "")
    except Exception as exc:
        message = ("error", exc, traceback.format_exc())
    try:
        writer.send(message)
    except Exception as exc:  # the result or the error does not pickle: say so in plain words
        what = "result" if message[0] == "ok" else f"error {type(message[1]).__name__}: {message[1]}"
        unsent = TrainingError(f"the fit's {what} could not be sent back ({type(exc).__name__}: {exc})")
        writer.send(("error", unsent, message[2]))
    writer.close()
