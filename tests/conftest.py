from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))

from tiny import make_tiny_backbone


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
    import os
    import socket
    import subprocess
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    try:
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
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def small_search(tmp_path_factory, tiny_backbone, ruddit_pairs):
    """One real search through the CLI shared by the report and tracker tests (each search costs about a
    minute): 5 tiny-BERT trials on Ruddit votes, TPE + ASHA stopping some, validating inside epochs,
    with W&B (offline) and MLflow (SQLite) tracking on. Returns (run directory, CompletedProcess)."""
    import os
    import subprocess

    import yaml

    import mlflow  # noqa: F401  test dependencies (pyproject's test extra): missing, the tests fail, never skip
    import wandb  # noqa: F401
    tmp = tmp_path_factory.mktemp("small_search")
    config = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 600, "folds": 4, "max_length": 32},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 1, "batch_size": 32, "val_every_n_steps": 3},
        "search": {
            "name": "rep", "storage_path": str(tmp / "runs"), "num_samples": 5, "max_concurrent_trials": 2,
            "grace_period": 0.5, "reduction_factor": 2, "n_startup_trials": 3,
            "space": {"train.lr": {"loguniform": [1e-5, 3e-2]}, "train.margin": {"uniform": [0.1, 1.0]},
                      "train.loss": {"choice": ["margin", "logistic"]}},
            "tracking": {"wandb": {"project": "pairtune-test", "mode": "offline"}, "mlflow": {}},
        },
    }
    path = tmp / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    out = subprocess.run([sys.executable, "-m", "search.cli", "search", str(path)], capture_output=True, text=True,
                         timeout=900, env=env, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return tmp / "runs" / "rep", out


@pytest.fixture
def run_cli(capsys):
    """`pairtune ARGS` through its entry point (search.cli.main) in this process, as a finished
    process: returncode, stdout, stderr, and started_ray (Ray was not running before, and is now)."""
    import ray

    from search.cli.main import main

    def run(*args):
        already = ray.is_initialized()  # by an earlier test in this process
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's --help and usage errors
            code = e.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err, started_ray=not already and ray.is_initialized())

    return run
