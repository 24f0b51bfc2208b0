"""Shared fixtures: real datasets, a real Redis, a fresh workspace per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

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
    """ONE local Ray cluster for the whole test session (2 CPUs, token auth, no dashboard), owned
    by this process and stopped at the end; yields its address for `--ray`."""
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
