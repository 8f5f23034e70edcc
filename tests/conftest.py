from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Under pytest-xdist (`-n 2`, the README's test command) each test process gets its share of the cores
# for the OpenMP threads of torch (read when torch is imported: nothing above imports it) and of the
# processes it starts, unless set already. With every process on all cores, two processes' spinning
# threads fought over them: the inner loop took 74 s instead of 42 s on 2 cores (2026-12-03).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))
# No test reaches real AWS: every S3 call goes to the moto server on loopback (s3_server) with these
# fake credentials, set before any Ray starts so that every Ray's workers have them (trials write to
# s3:// runs) and a local Ray the tests share need not be restarted for them.
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
sys.path.insert(0, str(Path(__file__).parent))

from tiny import make_tiny_backbone


def benchmark_module(name: str):
    """benchmarks/NAME.py imported as a module (the scripts are not a package), for tests of their parts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pytest_sessionfinish(session, exitstatus):
    """In CI (CI set, as .ci/run does) a skipped test fails the run: nothing may be skipped silently.
    A test that cannot run on a machine is deselected by the test command (-m "not gpu"), not skipped."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and os.environ.get("CI", "").lower() not in ("", "0", "false") and exitstatus == pytest.ExitCode.OK:
        reporter.ensure_newline()
        reporter.write_line(f"CI: {len(skipped)} skipped test(s) fail the run; nothing may be skipped in CI:", red=True)
        for report in skipped:
            reporter.write_line(f"  {report.nodeid}: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def assert_continues_from_last_checkpoint(first_try: list[dict], retry: list[dict], schedule: list[int]) -> None:
    """A retried or resumed trial (result.json rows before and after the interruption) continued from
    the checkpoint of its last result before it (each validation that is not final leaves one): it
    validates at exactly the steps an uninterrupted trial (`schedule`, its steps) validates at after
    that one. From scratch, or from an older checkpoint, it would validate again at steps it had."""
    assert first_try and not first_try[-1]["final"], first_try
    last = first_try[-1]["step"]
    assert [r["step"] for r in retry] == [s for s in schedule if s > last], (last, [r["step"] for r in retry], schedule)


def shared(name: str) -> Path:
    """A real data file from ../shared/data; a missing file fails the test (never skips it)."""
    path = SHARED_DATA / name
    assert path.exists(), f"real test data missing: {path} (tests expect ../shared/data beside the repo)"
    return path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    return str(make_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny-bert"))


@pytest.fixture(scope="session")
def ruddit_pairs() -> Path:
    return shared("ruddit_pairs.csv")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """An S3-compatible server (moto) on loopback and a bucket in it; yields the query string that
    points pyarrow (and Ray) at it: s3://BUCKET/path + query."""
    import socket
    import subprocess
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:  # the credentials: this file sets them for the whole test run
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        import pyarrow.fs as pafs

        query = f"?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                          allow_bucket_creation=True).create_dir("pairtune-test")
        yield query
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


# The one real search through the CLI that the whole test run shares (each search costs about a minute):
# test_search, test_report, test_trackers, test_failing_trials and test_damaged_runs read it; a test that
# changes a run copies it first (shared_run_copy). Its seeded TPE samples its 4 trials from its random
# start-up (n_startup_trials covers them all), so which backbone each draws is fixed: SHARED_SEED is one
# whose draws are all the working backbone; the broken one runs only as its points_to_evaluate entry.
TRACKER_VARIABLES = ("WANDB_", "MLFLOW_")  # this machine's own W&B and MLflow settings, kept out of test searches
SHARED_TRIALS = 7  # 3 points to evaluate (a good one, a NaN one, a broken backbone) + 4 sampled
SHARED_SEED = 35
SHARED_FIRST_LR = 1e-3  # the good point, run as given
SHARED_NAN_LR = 1e30  # outside the searched range on purpose: its loss is NaN at the first step
SHARED_DROPOUT = 0.27  # fixed under search.space, so every trial (and the exported best.yaml) has it


def shared_search_config(tmp: Path, backbone: str, broken: str, pairs: Path) -> dict:
    return {
        "data": {"pairs": str(pairs), "max_votes": 600, "folds": 4, "max_length": 32},
        "model": {"backbone": backbone},
        "train": {"epochs": 1, "batch_size": 32, "val_every_n_steps": 3},
        "search": {
            "name": "shared", "storage_path": str(tmp / "runs"), "num_samples": SHARED_TRIALS, "max_concurrent_trials": 2,
            "grace_period": 0.5, "reduction_factor": 2, "n_startup_trials": SHARED_TRIALS, "seed": SHARED_SEED,
            "max_failures": 0,  # both failures are deterministic: a retry would fail again
            "space": {"train.lr": {"loguniform": [1e-5, 3e-2]}, "train.margin": {"uniform": [0.1, 1.0]},
                      "train.loss": {"choice": ["margin", "logistic"]}, "model.backbone": {"choice": [backbone, broken]},
                      "model.dropout": SHARED_DROPOUT},
            "points_to_evaluate": [
                {"train.lr": SHARED_FIRST_LR, "train.margin": 0.5, "train.loss": "margin", "model.backbone": backbone},
                {"train.lr": SHARED_NAN_LR, "train.margin": 0.5, "train.loss": "margin", "model.backbone": backbone},
                {"train.lr": SHARED_FIRST_LR, "train.margin": 0.5, "train.loss": "logistic", "model.backbone": broken},
            ],
            "tracking": {"wandb": {"project": "pairtune-test", "mode": "offline"}, "mlflow": {}},
        },
    }


def broken_backbone(tiny_backbone: str, directory: Path) -> str:
    """A copy of the tiny backbone whose weights file is garbage: the config check passes, the trial raises."""
    import shutil

    shutil.copytree(tiny_backbone, directory)
    (directory / "model.safetensors").write_bytes(b"not a safetensors file")
    return str(directory)


@pytest.fixture(scope="session")
def small_search(tmp_path_factory, tiny_backbone, ruddit_pairs):
    """The one real search through the CLI (`python -m search.cli search CONFIG` in a subprocess, as users
    run it) shared by the whole test run: SHARED_TRIALS tiny-BERT trials on Ruddit votes, TPE + ASHA
    stopping some, validating inside epochs, model.dropout fixed under the space, W&B (offline) and MLflow
    (SQLite) tracking on, and two trials that fail (a NaN loss, a broken backbone) among them.
    Never change its run: copy it (shared_run_copy). Returns run (directory), out (CompletedProcess),
    config_path, config (dict), backbone, broken."""
    import os
    import subprocess

    import mlflow  # noqa: F401  test dependencies (pyproject's test extra): missing, the tests fail, never skip
    import wandb  # noqa: F401
    import yaml
    tmp = tmp_path_factory.mktemp("small_search")
    broken = broken_backbone(tiny_backbone, tmp / "broken-bert")
    config = shared_search_config(tmp, tiny_backbone, broken, ruddit_pairs)
    path = tmp / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(TRACKER_VARIABLES)}
    out = subprocess.run([sys.executable, "-m", "search.cli", "search", str(path)], capture_output=True, text=True,
                         timeout=900, env=env, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return SimpleNamespace(run=tmp / "runs" / "shared", out=out, config_path=path, config=config,
                           backbone=tiny_backbone, broken=broken)


@pytest.fixture
def shared_run_copy(small_search, tmp_path):
    """A copy of the shared search's run directory, under tmp_path, for a test that damages or changes it."""
    import shutil

    return Path(shutil.copytree(small_search.run, tmp_path / "runs" / small_search.run.name, symlinks=True))


@pytest.fixture
def own_environ():
    """os.environ as it was before the test, put back after it: for a test that runs a search in this
    process (a test may set PAIRTUNE_CACHE or clear a tracker's variables). Yields os.environ, without
    W&B's and MLflow's variables (none of this machine's own)."""
    saved = dict(os.environ)
    for k in [k for k in os.environ if k.startswith(TRACKER_VARIABLES)]:
        del os.environ[k]
    try:
        yield os.environ
    finally:
        # Kept: a local Ray started in the test set RAY_AUTH_MODE for the whole process (ray.init
        # turns token authentication on), and this process's cached Ray config follows it; without
        # it, a cluster a later test starts from this process (tests/test_node_failure.py) ran
        # without tokens while this process still sent and required them: its trials died unstarted.
        auth = os.environ.get("RAY_AUTH_MODE")
        os.environ.clear()
        os.environ.update(saved)
        if auth is not None:
            os.environ["RAY_AUTH_MODE"] = auth


_local_ray = []  # [the context of the local Ray shared_local_ray started in this process], or []


def _pairtunes_ray_is_running() -> bool:
    """A Ray is running in this process and it is the one start_ray started here (not a cluster or a
    Ray with a declared GPU that a test started its own way, nor a successor of it)."""
    import ray

    return bool(ray.is_initialized() and _local_ray
                and ray.get_runtime_context().gcs_address == _local_ray[0].address_info["gcs_address"])


@pytest.fixture
def shared_local_ray():
    """The local Ray this test process runs searches on, started as `pairtune search` starts one on a
    single machine (search.tune.tuner.start_ray: dashboard on loopback, token authentication) by the
    first test that asks for it and kept running for the next: each start costs about 11 CPU-seconds
    of Ray's daemons and dashboard. The modules whose tests use it share one xdist group, so one
    process starts it once. Yields ray.init's context."""
    import ray

    from search.tune import tuner

    if not _pairtunes_ray_is_running():
        if ray.is_initialized():  # one a test started its own way
            ray.shutdown()
        _local_ray[:] = [tuner.start_ray(None)]
    yield _local_ray[0]


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """`pairtune ARGS` through its entry point (search.cli.main) in this process, as a finished
    process: returncode, stdout, stderr, and started_ray: the command started or joined a Ray (it
    called search.tune.tuner.start_ray, or Ray was not running before and is now). A Ray an earlier
    test left running in this process (shared_local_ray's) is reused, and does not hide a command that asks for one."""
    import ray

    from search.cli.main import main
    from search.tune import tuner

    asked = []
    start_ray = tuner.start_ray
    monkeypatch.setattr(tuner, "start_ray", lambda address: asked.append(address) or start_ray(address))

    def run(*args):
        already = ray.is_initialized()  # by an earlier test in this process
        asked.clear()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's --help and usage errors
            code = e.code
        out = capsys.readouterr()
        started = bool(asked) or (not already and ray.is_initialized())
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err, started_ray=started)

    return run


# The groups that take longest (under -n 2 on 2 cores), longest first: with --no-loadscope-reorder
# xdist hands out groups in the order they are collected, so these start first and the many quick
# groups fill the gaps; xdist's own order (most tests first) left the longest searches, one test each,
# for the end, with one process idle while they ran.
LONGEST_GROUPS = ("shared", "test_cluster_jobs", "test_resume", "test_search_machinery", "test_node_failure", "test_gpu_check")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """With `-n 2 --dist loadgroup --no-loadscope-reorder` (pytest-xdist; the README's test command) two
    test processes run the tests, each group in one of them: a module's tests form a group (its module
    fixtures, a Ray cluster or a trained model, start once), and every module that reads the shared
    search or runs searches on the shared local Ray (shared_local_ray) joins one group "shared" (each starts
    once). The groups are collected longest first
    (LONGEST_GROUPS, then the other slow ones, then the rest, each in its usual order). Without -n (or
    with -n 0) the groups change nothing but the order."""
    shared = {item.module.__name__ for item in items
              if {"small_search", "shared_run_copy", "shared_local_ray"} & set(getattr(item, "fixturenames", ()))}
    group = {}
    for item in items:
        name = item.module.__name__
        group[item] = "shared" if name in shared else name
        item.add_marker(pytest.mark.xdist_group(group[item]))

    def rank(item):
        if group[item] in LONGEST_GROUPS:
            return LONGEST_GROUPS.index(group[item])
        return len(LONGEST_GROUPS) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)  # stable: each group's tests keep their order
