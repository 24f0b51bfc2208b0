"""Print what model selection plans for each CSV, from the planning functions alone (no training).

Per file: the sample rule, CV or validation, the optional families (kernel SVM, CatBoost, larger-trees
LightGBM), the forest's size, LightGBM's round cap, which candidates run under the long-fit cap, the
refit cap and the tuning trials, each with its rule's words. The data phase runs (prepare_data, into
a temporary folder) so the row and feature counts are the run's own. Run it on two checkouts and
diff the outputs to show a change to the cost rules leaves these plans as they were:

    PYTHONPATH=/work/main python benchmarks/selection_plans.py --budget 60 > before.txt
    PYTHONPATH=. python benchmarks/selection_plans.py --budget 60 > after.txt
    diff before.txt after.txt

It imports ml_expert from PYTHONPATH (the checkout under test), never from its own folder.
"""

from __future__ import annotations

import argparse
import glob
import tempfile
from pathlib import Path


def plan_lines(path: Path, budget: float, seed: int) -> list[str]:
    """The plan of one file, one `key: value` line each."""
    import numpy as np

    from ml_expert.tools.data.prepare import load_split, prepare_data
    from ml_expert.tools.selection.baselines import sized_params
    from ml_expert.tools.selection.boosting import plan_catboost, plan_large_leaves, round_cap
    from ml_expert.tools.selection.candidates import CORE_BASELINES
    from ml_expert.tools.selection.crossval import plan_cv
    from ml_expert.tools.selection.kernel import plan_svm
    from ml_expert.tools.selection.longfit import plan_cap, refit_cap
    from ml_expert.tools.selection.sampling import cheapest_price, plan_sample
    from ml_expert.tools.selection.tuning import BASES_WITH_SPACES, plan_trials

    with tempfile.TemporaryDirectory() as folder:
        prepared = prepare_data(str(path), "target", seed, Path(folder))
        schema = prepared.input_schema
        train_y = load_split(prepared.files, "train", schema, prepared.file_hashes)[1]
    if prepared.task != "classification" and prepared.task != "regression":
        return [f"{path.name}: task {prepared.task} (not planned here)"]
    sizes = prepared.split_sizes
    train_rows, val_rows = sizes.train, sizes.val
    features = prepared.n_features_out
    classification = prepared.task == "classification"
    classes = len(schema.classes or []) if classification else None
    smallest = int(np.unique(train_y, return_counts=True)[1].min()) if classification else 0
    out = [f"rows: train {train_rows}, validation {val_rows}, features out {features}, classes {classes}"]
    sampling = plan_sample(
        cheapest_price(
            CORE_BASELINES,
            features,
            classes,
            budget,
            sized=lambda b, r: sized_params(b, None, budget, r, schema),
        ),
        train_rows,
        budget,
    )
    out.append(f"sample: fired={sampling.fired} rows={sampling.sample_rows} | {sampling.rule}")
    cv = plan_cv(train_rows, val_rows, features, classes, budget, [n for n in CORE_BASELINES if n != "dummy"])
    out.append(f"cv: folds={cv.folds} | {cv.rule}")
    svm = plan_svm(prepared.task, train_rows, val_rows, features, smallest, budget, cv.folds)
    out.append(f"svm: {svm.include} | {svm.rule}")
    cat = plan_catboost(train_rows, val_rows, features, classes, budget, cv.folds)
    out.append(f"catboost: {cat.include} | {cat.rule}")
    large = plan_large_leaves(train_rows, val_rows, features, classes, budget)
    out.append(f"lightgbm_large: {large.include} | {large.rule}")
    out.append(f"lightgbm round cap: {round_cap(train_rows, budget)}")
    names = [*CORE_BASELINES, *(["svm"] if svm.include else []), *(["catboost"] if cat.include else [])]
    cv_rows = train_rows + val_rows if cv.folds else 0
    for name in names:
        params = sized_params(name, None, budget, train_rows, schema)
        cap = plan_cap(name, budget, 0.0, train_rows, features, classes, params, cv_rows, cv.folds or 0)
        refit = refit_cap(name, budget, 0.0, 0.0, train_rows + val_rows, features, classes, params)
        out.append(
            f"{name}: params={params} long_fit={cap is not None} refit_capped={refit is not None}"
            + (f" | {cap.rule}" if cap else "")
        )
    for name in BASES_WITH_SPACES:
        trials = plan_trials(name, train_rows, features, classes, budget)
        out.append(f"tune {name}: {trials.trials} trials | {trials.rule}")
    return [f"{path.name}: {line}" for line in out]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="*", help="CSV files (default: /work/shared/datasets/*.csv)")
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files = args.files or sorted(glob.glob("/work/shared/datasets/*.csv"))
    for file in files:
        for line in plan_lines(Path(file), args.budget, args.seed):
            print(line, flush=True)


if __name__ == "__main__":
    main()
