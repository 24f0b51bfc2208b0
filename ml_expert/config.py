"""`RunConfig`: every option of a run, declared once with its default, validation and help.

The CLI `run` options, the Python API `ml_expert.run(...)`, the MCP tool `start_run`, the
LangGraph input (`options`) and a detached child (which reads the parent's `config.json`) all
derive from this model, so an option is added, defaulted and validated in one place. The
checkpointed state keeps `config.model_dump(mode="json")`, plain JSON.

Light module (pydantic only): the CLI imports it on `--help`.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ml_expert.errors import UsageError
from ml_expert.tools.metric_names import MetricName

Modality = Literal["auto", "tabular", "image", "text", "sequence"]
Task = Literal["auto", "classification", "regression", "clustering"]
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Cli:
    """How a RunConfig field appears on the command line (flags; an argument; hidden; CLI type)."""

    decls: tuple[str, ...] = ()
    argument: bool = False
    hidden: bool = False
    cli_type: Any = None  # the type typer parses when it differs from the field's (NAME=VALUE strings)
    metavar: str | None = None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") in ("1", "true")


class RunConfig(BaseModel):
    """Every run option, once. Unknown options are refused (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data: Annotated[
        str | None,
        Field(
            description="CSV/Parquet/.npz file, folder of Parquet files, image folder or demo name "
            "(iris, ...). Default: a demo."
        ),
        Cli(argument=True),
    ] = None
    target: Annotated[str, Field(min_length=1, description="Label column."), Cli(("--target", "-t"))] = (
        "target"
    )
    seed: Annotated[
        int, Field(ge=0, description="Random seed (recorded in the manifest)."), Cli(("--seed",))
    ] = 42
    budget: Annotated[
        float,
        Field(gt=0, le=7 * 86400, description="Seconds for model selection plus training."),
        Cli(("--budget",)),
    ] = 120.0
    workspace: Annotated[
        str | None,
        Field(
            validate_default=True,
            description="Workspace folder (default: $ML_EXPERT_WORKSPACE or ./ml-expert-workspace).",
        ),
        Cli(("--workspace", "-w")),
    ] = None
    memory: Annotated[
        str | None,
        Field(description="redis://host:port/db, or 'embedded'. Default: $REDIS_URL, else embedded."),
        Cli(("--memory",)),
    ] = None
    min_metric: Annotated[
        dict[str, float],
        Field(description="Validation gate thresholds NAME=VALUE, e.g. accuracy=0.9 (repeatable)."),
        Cli(("--min-metric",), cli_type=list[str] | None, metavar="NAME=VALUE"),
    ] = {}
    max_overfit_gap: Annotated[
        float, Field(gt=0, description="Largest allowed train-validation gap."), Cli(("--max-overfit-gap",))
    ] = 0.3
    max_latency_ms: Annotated[
        float,
        Field(gt=0, description="Largest allowed single-row p99 (ms) of the package."),
        Cli(("--max-latency-ms",)),
    ] = 100.0
    max_fairness_gap: Annotated[
        float | None,
        Field(
            gt=0,
            description="Largest allowed equalized-odds (or relative per-group MAE) gap; enforced when "
            "given or when --sensitive names columns. Default 0.2.",
        ),
        Cli(("--max-fairness-gap",)),
    ] = None
    sensitive: Annotated[
        list[str],
        Field(description="Column to check fairness across (repeatable); default: by name."),
        Cli(("--sensitive",), metavar="COLUMN"),
    ] = []
    keep: Annotated[
        list[str],
        Field(
            description="Keep this column although a heuristic would drop it (leakage suspect, ID-like, "
            "constant) (repeatable)."
        ),
        Cli(("--keep",), metavar="COLUMN"),
    ] = []
    drop: Annotated[
        list[str],
        Field(description="Drop this feature column before anything else looks at it (repeatable)."),
        Cli(("--drop",), metavar="COLUMN"),
    ] = []
    drop_outliers: Annotated[
        bool,
        Field(
            description="Drop training rows with |z| > 3 on a measured column (default: flag and keep "
            "them; the model then still learns the tails the test and production rows come from)."
        ),
        Cli(("--drop-outliers",)),
    ] = False
    force: Annotated[
        bool,
        Field(description="Replace production even if the new model scores worse."),
        Cli(("--force",)),
    ] = False
    model_name: Annotated[
        str | None,
        Field(
            pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
            description="The registry model this release belongs to; it has its own production and "
            "previous aliases, so two projects in one workspace never replace each other. Default: the "
            "data file's name (iris.csv -> iris).",
        ),
        Cli(("--model-name",), metavar="NAME"),
    ] = None
    train_dnn: Annotated[
        bool, Field(description="Also train the Keras network (--no-dnn: do not)."), Cli(("--dnn/--no-dnn",))
    ] = True
    tune: Annotated[
        bool,
        Field(
            description="Search the best baseline's hyperparameters (3-fold CV on train; trials counted "
            "from the budget)."
        ),
        Cli(("--tune",)),
    ] = False
    metric: Annotated[
        MetricName | None,
        Field(
            description="Metric that ranks the candidates, chooses the model and is reported first: "
            "accuracy, balanced_accuracy, f1, f1_macro, roc_auc, log_loss, precision, recall "
            "(classification); r2, rmse, mae, mape, rmsle (regression); silhouette (clustering). "
            "Default: accuracy / r2 / silhouette."
        ),
        Cli(("--metric",)),
    ] = None
    modality: Annotated[
        Modality,
        Field(
            description="auto, tabular, image (pixel columns), text (a free-text column read word by "
            "word) or sequence (numeric columns as the ordered steps of one signal)."
        ),
        Cli(("--modality",)),
    ] = "auto"
    task: Annotated[
        Task,
        Field(
            description="auto (from the target column; clustering when no --target is given and there "
            "is no 'target' column), classification, regression or clustering (rows without a label)."
        ),
        Cli(("--task",)),
    ] = "auto"
    require_approval: Annotated[
        bool,
        Field(description="Stop before deployment until `ml-expert approve RUN_ID`."),
        Cli(("--require-approval",)),
    ] = False
    claude_flow_sync: Annotated[
        bool,
        Field(
            default_factory=lambda: _env_flag("ML_EXPERT_CLAUDE_FLOW_SYNC"),
            description="Also store the findings, a summary and `latest` in claude-flow's memory "
            "(namespace ml-expert) in one batch at the end of the run, read back; the CLI is the one "
            "`ml-expert setup claude` recorded. Default: $ML_EXPERT_CLAUDE_FLOW_SYNC.",
        ),
        Cli(("--claude-flow-sync",)),
    ]
    network: Annotated[
        Literal["auto", "conv", "lstm", "transformer"],
        Field(
            description="What reads text and sequences: auto (a rule on length, rows, budget and the "
            "baselines' room), conv (1-D convolution), lstm or transformer."
        ),
        Cli(("--network",)),
    ] = "auto"
    from_: Annotated[
        str | None,
        Field(
            description="Fine-tune a released model on this data: production or a version (v3), a "
            "scikit-learn model or a network (read by its own preprocessing; a regression network keeps "
            "the target scale it was released with), or a .keras file whose widths fit this data (for "
            "regression, served through its target_scale layer); it competes with the models from "
            "scratch, and the release gate compares with production."
        ),
        Cli(("--from",)),
    ] = None
    dnn_learning_rate: Annotated[
        float | None,
        Field(gt=0, description="Advanced: the network's start learning rate."),
        Cli(("--dnn-learning-rate",), hidden=True),
    ] = None
    ray: Annotated[
        str | None,
        Field(
            default_factory=lambda: os.environ.get("ML_EXPERT_RAY") or None,
            description="Run the independent fits as tasks on a Ray cluster: HOST:PORT, ray://HOST:PORT, "
            "auto (RAY_ADDRESS) or local (a throw-away local cluster, stopped at the end). Needs the "
            "`ray` extra. Default: $ML_EXPERT_RAY, else this process only.",
        ),
        Cli(("--ray",), metavar="ADDRESS"),
    ]
    workers: Annotated[
        int,
        Field(
            ge=1,
            le=1024,
            description="Train the network data-parallel on N Ray Train workers (Keras on the torch "
            "backend under DDP; needs --ray).",
        ),
        Cli(("--workers",)),
    ] = 1

    @field_validator("min_metric", mode="before")
    @classmethod
    def _parse_thresholds(cls, value: Any) -> Any:
        """NAME=VALUE strings (the CLI's repeatable option) or a mapping."""
        if value is None:
            return {}
        if isinstance(value, list | tuple):
            parsed: dict[str, Any] = {}
            for item in value:
                name, sep, number = str(item).partition("=")
                if not sep or not name.strip():
                    raise ValueError(f"expects NAME=NUMBER, got {item!r}")
                parsed[name.strip()] = number
            return parsed
        return value

    @field_validator("sensitive", "keep", "drop", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [] if value is None else list(value) if isinstance(value, tuple) else value

    @field_validator("data", "workspace", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    @field_validator("workspace", mode="after")
    @classmethod
    def _resolve_workspace(cls, value: str | None) -> str:
        from ml_expert.workspace import workspace_path

        return str(workspace_path(value))

    @field_validator("ray", mode="after")
    @classmethod
    def _ray_address(cls, value: str | None) -> str | None:
        from ml_expert.execution.address import resolve_address

        if not value or not value.strip():
            return None
        try:
            return resolve_address(value.strip())
        except UsageError as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _workers_need_a_cluster(self) -> RunConfig:
        if self.workers > 1 and not self.ray:
            raise ValueError("--workers N > 1 trains on a Ray cluster: give --ray ADDRESS (or local)")
        return self

    @model_validator(mode="after")
    def _keep_or_drop(self) -> RunConfig:
        both = sorted(set(self.keep) & set(self.drop))
        if both:
            raise ValueError(f"--keep and --drop both name {both}: say which")
        return self

    @classmethod
    def build(cls, **options: Any) -> RunConfig:
        """Validate options from any interface; a bad value is a usage error naming the option."""
        try:
            return cls(**options)
        except ValidationError as exc:
            raise config_error(exc) from None

    @classmethod
    def of(cls, state: dict[str, Any]) -> RunConfig:
        """The run's configuration from the graph state (stored there as JSON)."""
        return cls.build(**(state.get("options") or {}))

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        """Read a `config.json` written by :meth:`save` (a detached child reads its parent's)."""
        try:
            return cls.model_validate_json(path.read_text())
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
        except ValidationError as exc:
            raise config_error(exc) from None

    def save(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=2))
        return path

    def options(self) -> dict[str, Any]:
        """The JSON form kept in the checkpointed state and in run.json."""
        return self.model_dump(mode="json")


def option_name(field: str) -> str:
    """How a user names the option: the CLI flag when it has one, else the field name."""
    for meta in RunConfig.model_fields[field].metadata if field in RunConfig.model_fields else ():
        if isinstance(meta, Cli) and meta.decls:
            return meta.decls[0].split("/")[0]
    return field


def config_error(exc: ValidationError) -> UsageError:
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "options"
        message = error["msg"].removeprefix("Value error, ")
        bound = (error.get("ctx") or {}).get("gt")
        if error["type"] == "extra_forbidden":
            message = f"unknown option (the options are: {', '.join(RunConfig.model_fields)})"
        elif error["type"] == "greater_than" and bound == 0:
            message = f"must be positive, got {error['input']!r}"
        parts.append(f"{option_name(field)}: {message}")
    return UsageError("; ".join(parts))


def field_help(name: str) -> str:
    return RunConfig.model_fields[name].description or ""


def cli_meta(name: str) -> Cli:
    return next((m for m in RunConfig.model_fields[name].metadata if isinstance(m, Cli)), Cli())


def api_parameters(described: bool = True) -> list[inspect.Parameter]:
    """Keyword parameters mirroring RunConfig: the MCP tool's (annotated with the field's
    constraints and description) and the Python API's signature (plain types)."""
    params = []
    for name, field in RunConfig.model_fields.items():
        annotation: Any = field.annotation
        if described:
            constraints = [m for m in field.metadata if not isinstance(m, Cli)]
            annotation = Annotated[(annotation, *constraints, Field(description=field.description))]
        default = field.get_default(call_default_factory=True)
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return params


__all__ = ["CONFIG_FILE", "Cli", "Modality", "RunConfig", "api_parameters", "config_error", "field_help"]
