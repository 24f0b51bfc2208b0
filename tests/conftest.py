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


# How `make test` spreads the files over its 2 workers (--dist loadfile --no-loadscope-reorder, with
# the scheduler below): each file is one unit, as with plain loadfile, except that the files using
# one of these session fixtures form one unit, so the fixture is built once per run (one local Ray
# cluster; the text CNN trained once, and no worker idles on the other's lock). The controller sees
# only test ids, so the groups are named here by file; collection fails when a file uses the fixture
# and is not named. Units marked `long_running` (a file's `pytestmark`) and the groups are queued
# first: a long file scheduled last makes the tail.
SHARED_FIXTURE_FILES = {
    "ray_cluster": (
        "test_parquet_dataset.py",
        "test_ray_execution.py",
        "test_ray_train.py",
        "test_sampling.py",
    ),
    "text_release": ("test_finetune_vocabulary.py", "test_text_sequence.py"),
}
GROUP_OF_FILE = {name: group for group, names in SHARED_FIXTURE_FILES.items() for name in names}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long_running: a file of minutes; make test queues it first")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Checks that every user of a shared session fixture is in its group; queues long units first."""
    for item in items:
        for fixture, names in SHARED_FIXTURE_FILES.items():
            if fixture in getattr(item, "fixturenames", ()) and item.path.name not in names:
                raise pytest.UsageError(
                    f"{item.path.name} uses the session fixture {fixture}: add it to "
                    "SHARED_FIXTURE_FILES in tests/conftest.py (its files run on one worker)"
                )
    long_files = {item.path for item in items if item.get_closest_marker("long_running")}
    items.sort(key=lambda item: item.path not in long_files and item.path.name not in GROUP_OF_FILE)


@pytest.hookimpl(optionalhook=True)  # pytest without xdist runs the suite too
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """--dist loadfile with the groups above: a group is one unit, any other file is one."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileOrGroup(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return GROUP_OF_FILE.get(Path(file).name, file)

    return FileOrGroup(config, log)


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
