"""The names of the metrics a user can rank by (`--metric`).

tools/scoring.py defines each (task, direction) and checks it holds exactly these names; the run
configuration (ml_expert/config.py) offers them as the option's choices. Here, alone, so the
configuration stays light (no scikit-learn on `--help`) and no tool imports the configuration.
"""

from __future__ import annotations

from typing import Literal

MetricName = Literal[
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_macro",
    "roc_auc",
    "log_loss",
    "precision",
    "recall",
    "r2",
    "rmse",
    "mae",
    "mape",
    "rmsle",
    "silhouette",
]
