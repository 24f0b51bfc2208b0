"""Start-up: wall time of the light CLI commands (median of N fresh processes) and whether any of
them imports TensorFlow, Keras, scikit-learn or LangGraph (checked with `python -X importtime`).

    python benchmarks/startup.py --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, Recorder, child_env, ml_expert_command, run_child  # noqa: E402

COMMANDS = {"--help": ["--help"], "memory list": ["memory", "list"], "status": ["status"]}
HEAVY = ("tensorflow", "keras", "sklearn", "langgraph", "torch")
TARGET_SECONDS = 0.5


def heavy_imports(args: list[str], env: dict[str, str]) -> list[str]:
    """Top-level heavy packages the command imported, from `-X importtime`'s stderr."""
    child = run_child([sys.executable, "-X", "importtime", "-m", "ml_expert", *args], env=env)
    found = set()
    for line in child.stderr.splitlines():
        if "|" in line:
            module = line.rsplit("|", 1)[1].strip()
            top = module.split(".")[0]
            if top in HEAVY:
                found.add(top)
    return sorted(found)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.smoke:
        args.runs = 1
    recorder = Recorder(
        "startup",
        {"runs": args.runs, "statistic": "median", "invocation": "python -m ml_expert",
         "workspace": "empty temporary folder, embedded memory", "smoke": args.smoke},
        argv,
    )  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as workspace:
        env = child_env(ML_EXPERT_WORKSPACE=workspace)
        env.pop("REDIS_URL", None)
        for label, cli_args in COMMANDS.items():
            walls = []
            for _ in range(args.runs):
                child = run_child(ml_expert_command(*cli_args), env=env)
                walls.append(child.wall_seconds)
            heavy = heavy_imports(cli_args, env)
            median = statistics.median(walls)
            rows.append({
                "command": f"ml-expert {label}", "median_seconds": median, "min_seconds": min(walls),
                "max_seconds": max(walls), "exit_code": child.returncode, "heavy_imports": heavy,
                "met": median < TARGET_SECONDS and not heavy,
            })  # fmt: skip
            print(f"ml-expert {label}: median {median:.3f} s, heavy imports {heavy or 'none'}", flush=True)
    return recorder.save(
        {"rows": rows, "target": f"median < {TARGET_SECONDS} s and no heavy import"}, args.out_dir
    )


if __name__ == "__main__":
    print(main())
