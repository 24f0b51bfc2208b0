"""Training: train the planned network, choose the winner under the noise rule, refit it."""

from __future__ import annotations

from typing import Any

from ml_expert.agents import clustering
from ml_expert.agents.context import AgentContext
from ml_expert.agents.ml_developer.network import refit_network, train_network
from ml_expert.agents.retry import TRAINING_RETRY, Retries
from ml_expert.config import RunConfig
from ml_expert.phases import DataResult, SelectionResult, TrainingResult
from ml_expert.tools.data.prepare import load_split
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.selection.baselines import CandidateResult
from ml_expert.tools.selection.records import Candidate, FoldBag, Refit, TimeSpent
from ml_expert.tools.selection.verdicts import Escalation
from ml_expert.tools.training.records import NetworkRecord


def training(state: dict[str, Any]) -> dict[str, Any]:
    """Train the planned network (if any) and choose the winner on validation.

    A diverged network is retried by the graph (lower learning rate, tighter clipping) as
    agents.retry.TRAINING_RETRY says; after that it is discarded and the best baseline ships.
    """
    if clustering.is_clustering(state):
        return clustering.training(state)
    ctx = AgentContext(state, "ml-developer", "training")
    ctx.start()
    data, selection = DataResult.of(state), SelectionResult.of(state)
    schema = data.input_schema
    metric = selection.metric
    leaderboard = list(selection.leaderboard)
    # the network's record under the key that says what became of it, in the order the finding shows
    parts: dict[str, Any] = {}
    trained: NetworkRecord | None = None  # a network that converged (it competes)
    diverged: NetworkRecord | None = None
    plan = selection.plan
    attempt = TRAINING_RETRY.attempt(state)
    if plan.train_dnn:
        dnn = train_network(ctx, state, schema, metric, attempt)
        losses = [v for v in dnn.losses if v == v]
        if not dnn.diverged and dnn.cap_hit and (len(losses) < 2 or min(losses) >= losses[0]):
            # A wall-clock cap (an overloaded machine) stopped it before its loss could decrease:
            # nothing was learnt to compare, so the best candidate ships (no retry, no refusal).
            parts["network_cut_short"] = NetworkRecord.model_validate(
                dnn.model_dump(exclude={"summary", "candidate"})
            )
            ctx.decide(
                "discard the neural network",
                f"the wall-clock cap stopped it after {len(losses)} epoch(s) without a decreasing loss "
                f"({dnn.stopped_reason}); the best candidate ships",
            )
        elif not dnn.diverged:
            parts["dnn"] = trained = dnn
            leaderboard.append(dnn.scored)
        else:
            # Kept apart from "dnn": nothing downstream may export or score a diverged network.
            parts["diverged_network"] = diverged = dnn
            if TRAINING_RETRY.exhausted(attempt):
                dnn.discarded = (
                    f"diverged on {attempt + 1} attempts (the last {attempt} with lower learning rates)"
                )
                ctx.decide("discard the neural network", dnn.discarded + "; the best baseline ships instead")
            else:
                ctx.decide(
                    "retry training with a lower learning rate and tighter clipping",
                    f"attempt {attempt + 1} diverged ({dnn.stopped_reason}) at learning rate "
                    f"{dnn.config.learning_rate:g}; "
                    f"retry {attempt + 1} of {TRAINING_RETRY.max_retries}",
                )
    chosen, reason, verdict = _choose(selection, trained, state, schema)
    if verdict is not None:
        parts["network_escalation"] = verdict
    vocabulary = data.vocabulary_check
    if vocabulary is not None and vocabulary.reading == "own":
        # the run learnt the new text's vocabulary: the release cannot read those features (the
        # preparation phase's decision says why); the models from scratch are the comparison
        from ml_expert.agents.finetuning import not_fine_tuned

        parts["fine_tuning"] = not_fine_tuned(ctx, state, vocabulary)
    elif RunConfig.of(state).from_:
        from ml_expert.agents.finetuning import candidates, compete

        released, parts["fine_tuning"] = candidates(ctx, state, schema, metric)
        leaderboard += released
        chosen, reason = compete(metric, chosen, reason, released)
    ctx.decide(f"choose {chosen.name}", reason)
    retrying = diverged is not None and not diverged.discarded
    if selection.sample is not None and chosen.kind == "sklearn" and not chosen.parent:
        chosen = _ship_sampled(ctx, chosen, selection)
    elif chosen.refit_rule:
        ctx.decide(f"ship {chosen.name} as fit on the training split", chosen.refit_rule)
    elif chosen.kind == "sklearn" and chosen.name != "dummy" and not retrying and not chosen.parent:
        network_seconds = float((trained or diverged).train_seconds) if (trained or diverged) else 0.0
        chosen = _refit(ctx, state, schema, chosen, selection, network_seconds)
    elif chosen.kind == "keras" and trained is not None and not chosen.parent:
        chosen = refit_network(ctx, state, schema, chosen, trained)
    network = trained or diverged or parts.get("network_cut_short")
    result = TrainingResult(
        **parts,
        chosen=chosen,
        choice_reason=reason,
        leaderboard=leaderboard,
        attempt=attempt,
        time=_time_spent(selection, network, chosen),
    )
    written = result.state()
    finding = {k: v for k, v in written.items() if k not in ("dnn", "diverged_network")}
    for key in ("dnn", "diverged_network"):
        if key in written:
            finding[key] = {k: v for k, v in written[key].items() if k not in ("summary",)}
    ctx.record("training", finding)
    ctx.done(f"chosen {chosen.name} ({metric} {chosen.val_score:.4f} on validation)")
    # A refused training gate before a retry left status "refused": this attempt starts clean.
    return {
        "training": written,
        "phase": "training",
        "retries": Retries(training=attempt).state(),
        "status": "running",
        "reason": None,
    }


def _choose(
    selection: SelectionResult, dnn: NetworkRecord | None, state: dict[str, Any], schema: InputSchema
) -> tuple[Candidate, str, Escalation | None]:
    """The researcher's best candidate, unless the network beats it by more than the noise margin.

    The network was fit on train (early stopping on held-back training rows, tools/training/stopping.py),
    so it is compared with the candidate's train-only fit on the validation rows, which neither saw
    (bootstrap margin, tools/selection/noise.py)."""
    from ml_expert.tools.selection.noise import escalation

    metric = selection.metric
    best = selection.best
    # runs checkpointed before best_reason was recorded still resume
    reason = selection.best_reason or f"the researcher's best candidate by {metric}"
    if not dnn:
        return best, reason, None
    network = dnn.scored
    data = DataResult.of(state)
    y_val = load_split(data.files, "val", schema, data.file_hashes)[1]
    verdict = escalation(
        metric,
        y_val,
        CandidateResult.model_validate(best.model_dump()).held_out(False),
        CandidateResult.model_validate(network.model_dump()).held_out(False),
        seed=RunConfig.of(state).seed,
        simple_threshold=best.threshold,
        simple=best.name,
        candidate="dnn",
    )
    if verdict.wins:
        return network, verdict.rule, verdict
    return best, verdict.rule + "; ties go to the simpler model", verdict


def _ship_sampled(ctx: AgentContext, chosen: Candidate, selection: SelectionResult) -> Candidate:
    """A model fit on a sample (tools/selection/sampling.py) ships as fit, without the refit on
    train + validation: the budget could not fit even the cheapest candidate on all the rows, so a
    refit on more of them than the sample is what the sample was drawn to avoid."""
    sample = selection.sample
    assert sample is not None
    why = (
        f"{sample.words}: the budget does not fit even the cheapest candidate ({sample.cheapest}, "
        f"{sample.cheapest_seconds_all:.1f} s by the nominal rule on all rows > "
        f"{sample.limit_seconds:.1f} s); "
        "a refit on train + validation would cost more than the fit the sample was drawn for, so the "
        "fit that was judged on the sampled validation rows ships"
    )
    ctx.decide(f"ship {chosen.name} as fit on the sample, without the refit on train + validation", why)
    return Candidate.model_validate({**chosen.model_dump(), "refit_rule": why})


def _refit(
    ctx: AgentContext,
    state: dict[str, Any],
    schema: InputSchema,
    chosen: Candidate,
    selection: SelectionResult,
    network_seconds: float,
) -> Candidate:
    """Refit the chosen scikit-learn family on train + validation once the choice is made; a refit
    long for the budget runs where its cap can stop it, and then the train-only fit ships."""
    from ml_expert.tools.selection.baselines import RefitJob, refit_capped
    from ml_expert.tools.selection.verdicts import StoppedFit

    data = DataResult.of(state)
    files = data.files
    measured = CandidateResult.model_validate(chosen.model_dump())
    job = RefitJob(
        name=chosen.name,
        input_schema=schema,
        seed=RunConfig.of(state).seed,
        models_dir=ctx.run_dir / "models",
        base=chosen.base,
        settings=measured.settings(),
        bag=selection.cv_folds is not None,
    )
    budget = selection.budget
    refit = refit_capped(
        job,
        load_split(files, "train", schema, data.file_hashes),
        load_split(files, "val", schema, data.file_hashes),
        budget,
        (budget or 0.0) - selection.seconds - network_seconds,
        chosen.fit_seconds,
        data.n_features_out,
        data.n_classes or None,
        chosen.refit_nominal_seconds,
    )
    if isinstance(refit, StoppedFit):
        why = f"its refit on train + validation was stopped ({refit.reason}); the train-only fit was judged"
        ctx.decide(f"ship {chosen.name} as fit on the training split", why)
        rows = data.split_sizes.train + data.split_sizes.val
        stopped = Refit(on="none", rows=rows, fit_seconds=refit.seconds)
        return Candidate.model_validate({**chosen.model_dump(), "refit_rule": why, "refit": stopped})
    bag: FoldBag | None = refit.pop("bag", None)
    skipped = refit.pop("bag_skipped", None)
    if skipped:
        ctx.decide(f"refit {chosen.name} once, not as a bag of fold fits", skipped)
    if bag is not None:
        ctx.decide(
            f"ship {chosen.name} as a bag of {bag.folds} fold fits ({len(bag.members)} models)",
            f"compared by cross-validation (small data): {bag.rule}. Averaging fits lowers the variance of "
            "one; benchmarks/bagging.py measured bags of 8 against one refit on all rows (tools/selection/"
            "fold_bag.py). Its validation and train figures are those of the train-only fit.",
        )
    else:
        ctx.decide(
            f"refit {chosen.name} on train + validation ({refit['rows']} rows)",
            "the choice was made on held-out validation; the shipped model then learns from every row "
            "but the test split. Its validation and train figures are those of the train-only fit.",
        )
    record = Refit(
        **refit,
        on="folds" if bag is not None else "train+val",
        bag=bag,
        selected_path=chosen.path,
        selected_sha256=chosen.sha256,
    )
    return Candidate.model_validate(
        {**chosen.model_dump(), "path": refit["path"], "sha256": refit["sha256"], "refit": record}
    )


def _time_spent(selection: SelectionResult, dnn: NetworkRecord | None, chosen: Candidate) -> TimeSpent:
    """How the budget was spent: baselines, the network, the refit, the total, and whether a cap fired."""
    budget = selection.budget
    nn_seconds = float(dnn.train_seconds) if dnn else 0.0
    refit_seconds = float(chosen.refit.fit_seconds) if chosen.refit else 0.0
    total = selection.seconds + nn_seconds + refit_seconds
    tuning = selection.tuning
    return TimeSpent(
        budget_seconds=budget,
        model_selection_seconds=selection.seconds,
        cv_folds=selection.cv_folds,
        candidates=[c.name for c in selection.leaderboard],
        baseline_fit_seconds=selection.baseline_seconds,
        tuning_seconds=tuning.seconds if tuning else 0.0,
        tuning_trials_run=tuning.trials_run if tuning else 0,
        tuning_trials_planned=tuning.trials_planned if tuning and tuning.ran else 0,
        network_seconds=nn_seconds,
        network_epochs_planned=dnn.config.max_epochs if dnn else 0,
        network_epochs_run=dnn.epochs_trained if dnn else 0,
        refit_seconds=refit_seconds,
        total_seconds=round(total, 3),
        share_of_budget=round(total / budget, 3) if budget else None,
        cap_hit=bool(dnn and dnn.cap_hit) or bool(tuning and tuning.cap_hit) or bool(selection.stopped),
    )
