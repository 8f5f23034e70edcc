"""A search submitted as a Ray job to a real three-node cluster on this machine (`ray start --head`
with the dashboard on loopback and token authentication, two workers declaring logical GPUs),
watched through the dashboard's HTTP API while it runs and followed to SUCCEEDED; its best config is
found in the storage path, `pairtune status` reads the leaderboard there, and the trials' records
show how half-GPU trials were placed across the nodes."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from search.cli.submit import entrypoint, follow, submit
from search.config.load import load_config
from search.runs.status import snapshot

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return json.loads(r.read())


def processes_under(directory: str) -> list[int]:
    """Our Ray processes: those whose command line names this head's own temp directory."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if directory.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:  # ended meanwhile
            pass
    return pids


def agent_ports() -> list[str]:
    """Every fixed port a Ray node opens, picked free (other Ray instances may run on this machine)."""
    return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}", "--disable-usage-stats"]


@pytest.fixture(scope="module")
def head():
    """A three-node Ray cluster of our own on this machine, shaped like cluster.yaml: a head that runs
    no trials (0 CPUs), with the dashboard on loopback and token authentication, and two workers that
    declare one logical GPU each (2 and 1 CPUs). Free ports, its own temp dir and token; stopped by
    killing exactly its processes (`ray stop` would stop every Ray on this machine)."""
    temp = tempfile.mkdtemp(prefix="ptj", dir="/tmp")  # short: Ray's socket paths have a length limit
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    port, dashboard = free_port(), free_port()
    nodes = [
        ["--head", f"--port={port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--num-cpus=0",
         "--num-gpus=0", f"--temp-dir={temp}", f"--ray-client-server-port={free_port()}", "--include-dashboard=true"],
        # Each node its own temp dir, as on separate machines (a shared one mixes their job files).
        [f"--address=127.0.0.1:{port}", "--num-cpus=2", "--num-gpus=1", f"--temp-dir={temp}/n1"],
        [f"--address=127.0.0.1:{port}", "--num-cpus=1", "--num-gpus=1", f"--temp-dir={temp}/n2"],
    ]
    logs, procs = [], []
    url = f"http://127.0.0.1:{dashboard}"
    try:
        for i, args in enumerate(nodes):
            logs.append(open(Path(temp) / f"ray_start_{i}.log", "w"))  # noqa: SIM115 (closed in teardown)
            procs.append(subprocess.Popen(["ray", "start", "--block", *args, *agent_ports()], env=env, stdout=logs[-1],
                                          stderr=subprocess.STDOUT, start_new_session=True))
            deadline = time.monotonic() + 120
            while True:  # the head's dashboard answers, then each worker has joined
                try:
                    alive = [n for n in get(f"{url}/api/v0/nodes", token)["data"]["result"]["result"] if n["state"] == "ALIVE"]
                    if len(alive) == i + 1:
                        break
                except (urllib.error.URLError, ConnectionError, OSError, KeyError):
                    pass
                assert procs[-1].poll() is None, (Path(temp) / f"ray_start_{i}.log").read_text()[-3000:]
                assert time.monotonic() < deadline, f"Ray node {i} did not come up"
                time.sleep(1)
        nodes = get(f"{url}/api/v0/nodes", token)["data"]["result"]["result"]
        workers = {n["resources_total"].get("CPU", 0): n["node_id"] for n in nodes if not n["is_head_node"]}
        yield {"url": url, "token": token, "env": env, "temp": temp, "big": workers[2.0], "small": workers[1.0]}
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGKILL)  # SIGTERM would drain for 30 s; nothing here needs saving
            proc.wait(timeout=30)
        for pid in processes_under(temp):  # workers the raylets started outside the process groups
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log in logs:
            log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def job(head, tiny_backbone, ruddit_pairs, tmp_path_factory):
    """Submit a 3-trial search (half a GPU each) through `pairtune submit` (the Jobs API) and watch the dashboard while it runs."""
    work = tmp_path_factory.mktemp("workdir")
    runs = tmp_path_factory.mktemp("storage")
    config = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 1200, "max_length": 48},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 1, "batch_size": 32, "val_every_n_steps": 6},
        "search": {"name": "job", "storage_path": str(runs), "num_samples": 3, "max_concurrent_trials": 3,
                   "cpus_per_trial": 1, "gpus_per_trial": 0.5, "scheduler": "fifo",
                   "space": {"train.lr": {"choice": [1e-3, 2e-3, 3e-3]}}},
    }
    (work / "configs").mkdir()
    (work / "configs" / "search.yaml").write_text(yaml.safe_dump(config))
    token_file = work.parent / "token"
    token_file.write_text(head["token"])

    # The plain route, run alongside: `ray job submit --working-dir DIR -- pairtune ...`, token in the environment.
    plain = subprocess.run(["ray", "job", "submit", "--no-wait", "--submission-id", "plain-check", "--working-dir", str(work),
                            "--", "pairtune", "check", "configs/search.yaml"], env={**head["env"], "RAY_ADDRESS": head["url"]},
                           capture_output=True, text=True, timeout=300, check=False)
    assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr[-3000:]
    client, job_id = submit(str(work / "configs" / "search.yaml"), ["search.seed=3"], address=head["url"],
                            working_dir=str(work), token_file=str(token_file))
    seen = {"jobs": [], "actors": {}, "logs": ""}

    def watch_dashboard():
        """What a user sees on the dashboard while the search runs (the same HTTP API its pages use)."""
        while not seen.get("done"):
            try:
                seen["jobs"] = get(f"{head['url']}/api/jobs/", head["token"])
                actors = get(f"{head['url']}/api/v0/actors?detail=1&limit=1000", head["token"])["data"]["result"]["result"]
                for a in actors:
                    seen["actors"].setdefault((a.get("class_name"), a.get("repr_name")), set()).add(a["state"])
                ours = [j for j in seen["jobs"] if j.get("submission_id") == job_id]
                if ours and ours[0]["status"] == "RUNNING":  # logs as they stand mid-run
                    seen["logs"] = get(f"{head['url']}/api/jobs/{job_id}/logs", head["token"])["logs"]
            except (urllib.error.URLError, OSError, KeyError):
                pass
            time.sleep(1)

    watcher = threading.Thread(target=watch_dashboard, daemon=True)
    watcher.start()
    lines = []
    status = follow(client, job_id, out=lines.append, poll_s=2, timeout_s=600)
    seen["done"] = True
    watcher.join(timeout=15)
    for _ in range(150):
        if str(client.get_job_status("plain-check").value) in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(2)
    plain = (str(client.get_job_status("plain-check").value), client.get_job_logs("plain-check"))
    return {"id": job_id, "status": status, "logs": client.get_job_logs(job_id), "printed": "\n".join(lines),
            "seen": seen, "run": runs / "job", "client": client, "work": work, "plain": plain}


def test_the_dashboard_needs_the_token(head):
    with pytest.raises(urllib.error.HTTPError) as denied:
        get(f"{head['url']}/api/jobs/", None)
    assert denied.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as wrong:
        get(f"{head['url']}/api/jobs/", "0" * 64)
    assert wrong.value.code == 403


def test_submitted_search_succeeds_and_exports_to_the_storage_path(job):
    assert job["status"] == "SUCCEEDED", job["logs"][-4000:]
    logs = job["logs"]
    assert "search finished: 3 trials, 0 errored" in logs
    assert job["printed"].strip() and "search finished" in job["printed"]  # follow() streamed the logs
    best = job["run"] / "export" / "best.yaml"
    assert best.exists()
    cfg = load_config(best)
    assert cfg.train.lr in (1e-3, 2e-3, 3e-3) and cfg.search.seed == 3  # --set reached the job
    assert not cfg.search.space  # every value fixed
    assert (job["run"] / "export" / "leaderboard.csv").exists()
    info = job["client"].get_job_info(job["id"])
    assert info.entrypoint == "pairtune search configs/search.yaml --set search.seed=3"


def test_dashboard_showed_the_job_and_every_trial_by_name_while_running(job):
    seen = job["seen"]
    assert any(j.get("submission_id") == job["id"] for j in seen["jobs"])
    board, _ = snapshot(job["run"])
    names = [repr_name for (_, repr_name) in seen["actors"] if repr_name]
    for trial_id in board.trial_id:
        # Each trial's actor is named by its trial id and sampled values, and was seen alive.
        mine = [n for n in names if n.startswith(trial_id)]
        assert mine and "lr=" in mine[0], seen["actors"]
        assert any("ALIVE" in states for (_, n), states in seen["actors"].items() if n == mine[0])
    # While the job ran, its logs carried the live trial table and each validation's agreement.
    assert "Trial name" in seen["logs"] and "pairtune: trial " in seen["logs"] and "val/agreement" in seen["logs"]
    for trial_id in board.trial_id:
        assert f"pairtune: trial {trial_id}_lr=" in job["logs"]


def test_status_reads_the_leaderboard_from_storage(job, capsys):
    from search.cli.main import main

    assert main(["status", str(job["run"])]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 trials (3 finished)" in out
    board, _ = snapshot(job["run"])
    for trial_id in board.trial_id:
        assert trial_id in out


def test_plain_ray_job_submit_works_too(job):
    """`ray job submit --working-dir DIR -- pairtune check CONFIG`, with the token in the environment."""
    status, logs = job["plain"]
    assert status == "SUCCEEDED", logs[-3000:]
    assert "ok: the config and data are valid" in logs


def test_config_outside_the_working_dir_is_refused_before_upload(tmp_path):
    from search.config.parse import ConfigError

    (tmp_path / "c.yaml").write_text("search: {name: x}\n")
    with pytest.raises(ConfigError, match="must be inside the working directory"):
        entrypoint(tmp_path / "c.yaml", [], tmp_path / "elsewhere")


def test_half_gpu_trials_spread_over_nodes_and_share_a_gpu(job, head):
    """gpus_per_trial 0.5 with 1 CPU each: two trials on the 2-CPU worker share its GPU, one runs on the
    other worker, none on the head; each sees only its GPU and, the GPUs being logical, trains on CPU."""
    placed = [json.loads(d.read_text().splitlines()[-1]) for d in job["run"].glob("*/result.json")]
    assert len(placed) == 3
    by_node = {}
    for r in placed:
        by_node.setdefault(r["node_id"], []).append(r)
        assert len(r["gpu_ids"].split(",")) == 1, r["gpu_ids"]  # one GPU id each ...
        assert r["cuda_visible_devices"] == r["gpu_ids"]  # ... and it is the only one the trial sees
        assert r["device"] == "cpu" and r["precision"] == "32-true"  # no real CUDA: CPU fallback, fp32
    assert set(by_node) == {head["big"], head["small"]}
    assert len(by_node[head["big"]]) == 2 and len(by_node[head["small"]]) == 1
    shared = by_node[head["big"]]
    assert shared[0]["gpu_ids"] == shared[1]["gpu_ids"]  # two half-GPU trials on one GPU


def test_export_and_status_read_the_run_from_s3(job, s3_server, tmp_path, capsys):
    """The run in an S3 bucket (an S3-compatible server on loopback), read back through pyarrow."""
    from search.cli.main import main
    from search.runs import storage

    run = "s3://pairtune-test/runs/job" + s3_server
    storage.upload(job["run"], run)
    assert main(["export", run]) == 0
    summary = json.loads(storage.read_text(storage.join(run, "export", "summary.json")))
    local = json.loads((job["run"] / "export" / "summary.json").read_text())
    assert summary["best_trial"] == local["best_trial"] and summary["best_agreement"] == local["best_agreement"]
    assert summary["best_checkpoint"].startswith("s3://pairtune-test/runs/job/" + local["best_trial"] + "/checkpoint_")
    assert storage.exists(storage.join(run, "export", "best.yaml"))
    assert main(["export", run, "--out", str(tmp_path / "mine")]) == 0  # a local copy to train from
    assert load_config(tmp_path / "mine" / "best.yaml").train.lr == load_config(job["run"] / "export" / "best.yaml").train.lr
    capsys.readouterr()
    assert main(["status", run]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 trials (3 finished)" in out and local["best_trial"] in out


DDP_TRIALS = 2


@pytest.fixture(scope="module")
def ddp_job(head, job, tiny_backbone, ruddit_pairs, s3_server, tmp_path_factory):
    """A search whose trial takes 2 GPUs (gpus_per_trial 2): each trial is a Ray Train DDP run of two
    workers with one GPU each, and no node has two, so the workers of a trial span both worker nodes.
    Results go straight to S3 (an S3-compatible server on loopback), as cluster.yaml's storage does.
    Two trials, one at a time: the first one's loss turns NaN at its first step (its workers raise),
    then a good one, which must still get its workers and whose Train run's directory, removed with its
    placement group (search.tune.ddp.release), must be gone. No dropout anywhere, so one process can
    replay the good trial exactly. Runs after `job`, on the same cluster."""
    work = tmp_path_factory.mktemp("ddpwork")
    backbone = work / "tiny-no-dropout"
    shutil.copytree(tiny_backbone, backbone)
    encoder = json.loads((backbone / "config.json").read_text())
    encoder.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (backbone / "config.json").write_text(json.dumps(encoder))
    run = "s3://pairtune-test/direct/ddpjob" + s3_server
    config = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 600, "folds": 5, "max_length": 48},
        "model": {"backbone": str(backbone), "dropout": 0.0},
        # An odd batch: the two processes get 16 and 15 votes, so the loss weighting matters.
        "train": {"epochs": 1, "batch_size": 31, "val_every_n_steps": 5},
        "search": {"name": "ddpjob", "storage_path": "s3://pairtune-test/direct" + s3_server, "num_samples": DDP_TRIALS,
                   "max_concurrent_trials": 1, "cpus_per_trial": 2, "gpus_per_trial": 2, "baseline": False,
                   "grace_period": 0.5, "reduction_factor": 2, "max_failures": 0,
                   "space": {"train.lr": {"choice": [1e30, 1e-3]}},
                   "points_to_evaluate": [{"train.lr": 1e30}, {"train.lr": 1e-3}]},
    }
    (work / "search.yaml").write_text(yaml.safe_dump(config))
    token_file = work.parent / "ddp-token"
    token_file.write_text(head["token"])
    aws = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    client, job_id = submit(str(work / "search.yaml"), [], address=head["url"], working_dir=str(work),
                            token_file=str(token_file), env=aws)
    status = follow(client, job_id, out=lambda _: None, poll_s=2, timeout_s=600)
    return {"status": status, "logs": client.get_job_logs(job_id), "run": run, "work": work}


def test_gpus_per_trial_2_runs_each_trial_as_ddp_across_nodes_writing_to_s3(ddp_job, head):
    from search.runs import storage

    assert ddp_job["status"] == "SUCCEEDED", ddp_job["logs"][-5000:]
    assert f"search finished: {DDP_TRIALS} trials, 1 errored" in ddp_job["logs"]
    run = ddp_job["run"]
    assert storage.exists(storage.join(run, "export", "best.yaml"))
    board, _ = snapshot(run)
    assert len(board) == DDP_TRIALS
    board = board.set_index("param:train.lr")
    # The failing trial ends as an error naming the workers' own error; the next trial still gets workers.
    assert board.loc[1e30, "outcome"] == "error"
    assert "data-parallel training failed" in board.loc[1e30, "error"] and "training loss became nan" in board.loc[1e30, "error"]
    assert board.loc[1e-3, "outcome"] in {"finished", "stopped_by_asha"}
    rows = [json.loads(x) for x in storage.read_text(storage.join(run, board.loc[1e-3, "trial_id"], "result.json")).splitlines()]
    last = rows[-1]
    assert last["workers"] == 2 and last["backend"] == "gloo"
    # One worker on each worker node (each has one GPU), none on the head; each sees its node's GPU 0.
    assert sorted(last["node_id"].split(",")) == sorted([head["big"], head["small"]])
    assert len(last["worker_ips"].split(",")) == 2
    assert last["gpu_ids"] == "0;0" and last["cuda_visible_devices"] == "0;0"
    assert last["device"] == "cpu" and last["precision"] == "32-true"  # logical GPUs: CPU fallback
    epochs = [r["epoch"] for r in rows]
    assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs)  # each validation reported once
    names = storage.list_names(storage.join(run, board.loc[1e-3, "trial_id"]))
    assert sum(n.startswith("checkpoint_") for n in names) == 1  # the best, copied from the Train run
    assert "ddp" not in storage.list_names(run) or not storage.list_names(storage.join(run, "ddp"))
    # One line per validation in the logs, from rank 0 (Ray Train's print patch would double it).
    line = next(x for x in ddp_job["logs"].splitlines() if "pairtune: trial " in x and "(2 workers)" in x)
    assert ddp_job["logs"].count(line.split(")", 1)[-1].strip()) == 1


def test_ddp_trial_matches_one_process_training(ddp_job):
    """The exported best config trained in one process follows the DDP trial: same batches, the loss
    weighted so DDP's gradient average is the batch mean, dropout off."""
    from model.train import fit, set_threads
    from search.runs import storage
    from search.tune.ddp import workers_per_trial
    from search.tune.prepare import prepare_data

    assert ddp_job["status"] == "SUCCEEDED", ddp_job["logs"][-5000:]
    run = ddp_job["run"]
    summary = json.loads(storage.read_text(storage.join(run, "export", "summary.json")))
    rows = [json.loads(x) for x in storage.read_text(storage.join(run, summary["best_trial"], "result.json")).splitlines()]
    best_yaml = ddp_job["work"] / "best.yaml"
    best_yaml.write_text(storage.read_text(storage.join(run, "export", "best.yaml")))
    best = load_config(best_yaml)
    assert workers_per_trial(best.search) == 2  # the export keeps the search section as it was
    set_threads(1)
    _, tracker = fit(best.model, best.train, prepare_data(best).fold_inputs(best.model.backbone, best.data.lowercase),
                     best.data.max_length)
    one = {round(h.epoch, 2): h for h in tracker.history}
    assert len(one) >= len(rows) >= 2
    for r in rows:
        mine = one[round(r["epoch"], 2)]
        assert abs(mine.val_loss - r["val/loss"]) < 1e-5, (r["epoch"], mine.val_loss, r["val/loss"])
        assert abs(mine.agreement - r["val/agreement"]) < 1e-6, (r["epoch"], mine.agreement, r["val/agreement"])
