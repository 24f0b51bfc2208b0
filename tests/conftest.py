"""Shared fixtures: real datasets, a real Redis, a fresh workspace per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

# `make test` runs the files on two pytest-xdist workers: each talks to its own Redis database
# (the server's database number = the worker's), so one worker's runs never move the `latest`
# key another worker's test is reading. Set before any test module reads REDIS_URL.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw"):
    _url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    _base = _url.rsplit("/", 1)[0] if _url.rsplit("/", 1)[-1].isdigit() else _url.rstrip("/")
    os.environ["REDIS_URL"] = f"{_base}/{int(_WORKER[2:]) + 1}"

REPO = Path(__file__).resolve().parents[1]
# CI clones next to shared/; worktrees sit one level deeper; the bundled sets are the fallback.
DATASETS = next(
    p
    for p in (
        Path(os.environ.get("ML_EXPERT_DATASETS", "/nonexistent")),
        REPO.parent / "shared" / "datasets",
        REPO.parent.parent / "shared" / "datasets",
        REPO / "ml_expert" / "datasets",
    )
    if p.exists()
)


@pytest.fixture(scope="session")
def datasets() -> Path:
    return DATASETS


@pytest.fixture(scope="session")
def live_redis_url() -> str:
    """The Redis the suite talks to; a missing server fails loudly, it is never skipped."""
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {url} ({exc}); run scripts/ensure-redis.sh", pytrace=False)
    return url


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """ONE local Ray cluster per test session, i.e. per pytest-xdist worker under `make test` (2 CPUs,
    token auth, no dashboard), owned by this process and stopped at the end; yields its address for
    `--ray`."""
    os.environ["RAY_AUTH_MODE"] = "token"  # Ray 2.60's default, set explicitly
    import ray

    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        log_to_driver=False,
    )
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def text_release(tmp_path_factory: pytest.TempPathFactory):
    """The run's one released text CNN (tests/shared_release.py): built once for all files and
    workers; read it, or copy its workspace (`shared_release.copy_workspace`) to change it."""
    from shared_release import shared_folder, text_release

    return text_release(shared_folder(tmp_path_factory))
