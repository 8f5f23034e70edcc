"""Data-parallel trials for large backbones: `search.gpus_per_trial: N` (N > 1), or
`search.workers_per_trial: N` on CPUs, runs each trial as a Ray Train DDP run inside Tune.

The Tune trial is only the driver: it reserves no CPU or GPU (just memory), starts a TorchTrainer
whose N workers each take one GPU (or cpus_per_trial / N CPUs) wherever the cluster has them, and
hands each validation the workers report on to Tune, checkpoint included. So ASHA, the searcher, the
budgets, retries, resume, export and status treat a DDP trial like any other.

Each worker trains on its share of every batch of `train.batch_size` votes (data.loaders.ShardedBatches)
with its loss weighted so that DDP's gradient average is the whole batch's mean: batch size, steps per
epoch, learning-rate schedule and ASHA's epochs mean what they mean in a one-process trial, and the
scores match it up to float rounding (tested). Validation texts are split among the workers and their
scores all-reduced, so every worker computes the same agreement.

Tune does not count the workers' resources (the driver reserves none), so `search.max_concurrent_trials`
is what bounds how many trials train at once: set it to the cluster's GPUs / N.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time

from data.prepare import PreparedData
from search.config.parse import PairtuneConfig, SearchConfig, with_params
from search.runs import storage
from search.runs.layout import run_dir

log = logging.getLogger(__name__)

DRIVER_MEMORY = 512 * 2**20  # what the trial's driver process reserves instead of a CPU
DDP_DIR = "ddp"  # in the run directory: the Train runs' own checkpoints, until Tune has copied them


def workers_per_trial(s: SearchConfig) -> int:
    """Processes each trial trains with: workers_per_trial if set, else one per GPU of gpus_per_trial."""
    if s.workers_per_trial is not None:
        return s.workers_per_trial
    return int(s.gpus_per_trial) if s.gpus_per_trial > 1 else 1


def driver_resources() -> dict:
    return {"cpu": 0, "memory": DRIVER_MEMORY}


def worker_resources(s: SearchConfig) -> dict:
    n = workers_per_trial(s)
    return {"CPU": s.cpus_per_trial / n, "GPU": s.gpus_per_trial / n}


def process_group_backend() -> str:
    """gloo for tensors on CPUs and, where torch has NCCL (a CUDA build), NCCL for tensors on GPUs.
    A declared GPU that is not a real CUDA device leaves the model on the CPU, so gloo carries it."""
    import torch.distributed as dist

    return "cpu:gloo,cuda:nccl" if dist.is_nccl_available() else "gloo"


def _forwarder(queue):
    from ray.train.v2.api.callback import UserCallback

    class ForwardToTune(UserCallback):
        """Runs in the Train run's controller: passes rank 0's metrics and the persisted checkpoint
        to the trial's driver. The queue holds one item, so training waits while Tune is behind."""

        def after_report(self, run_context, metrics, checkpoint):
            queue.put({"metrics": metrics[0], "checkpoint": checkpoint})

    return ForwardToTune()


# The DDP trials this process drives (one, in a trial actor): {trial id: {inner: the Train run's
# directory, group: its placement group}}, released when the trial ends however it ends.
_running: dict[str, dict] = {}


def release() -> None:
    """Free what this process's DDP trials hold: the Train run's placement group (its workers go with
    it) and its staging directory. Runs when the trial function ends and when Tune stops the trial
    actor (search.tune.cluster.named_trainable), since ASHA's STOP (also at max_t) kills the trial while
    Train still holds its group; Ray Train's own cleaner may miss it (it needs the state API)."""
    from ray.util.placement_group import remove_placement_group

    for trial_id in list(_running):
        held = _running.pop(trial_id)
        if held["group"] is not None:
            with contextlib.suppress(Exception):  # already removed by Train when it finished cleanly
                remove_placement_group(held["group"])
        with contextlib.suppress(Exception):
            storage.delete_dir(held["inner"])


def run_ddp_trial(params: dict, cfg: PairtuneConfig, prepared: PreparedData) -> None:
    """Tune function trainable for a data-parallel trial: drives one TorchTrainer run."""
    from ray import tune
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Empty, Queue

    started = time.time()
    ctx = tune.get_context()
    s = cfg.search
    queue = Queue(maxsize=1, actor_options={"num_cpus": 0})

    inner_root = storage.join(run_dir(cfg), DDP_DIR)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={
            "params": params, "cfg": cfg, "prepared": prepared, "started": started,
            "checkpoint": tune.get_checkpoint(), "trial_name": ctx.get_trial_name(), "trial_dir": ctx.get_trial_dir(),
            "queue": queue,
        },
        scaling_config=ScalingConfig(
            num_workers=workers_per_trial(s), use_gpu=s.gpus_per_trial > 0, resources_per_worker=worker_resources(s)
        ),
        torch_config=TorchConfig(backend=process_group_backend()),
        run_config=RunConfig(
            name=ctx.get_trial_id(), storage_path=str(inner_root), callbacks=[_forwarder(queue)],
            failure_config=FailureConfig(max_failures=0),  # Tune retries the trial from its checkpoint
        ),
    )
    failed: list[BaseException] = []

    def train() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # noqa: BLE001 - raised again in the trial below
            failed.append(e)

    _running[ctx.get_trial_id()] = {"inner": storage.join(inner_root, ctx.get_trial_id()), "group": None}
    thread = threading.Thread(target=train, name="pairtune-ddp", daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not queue.empty():
            try:
                item = queue.get(timeout=0.5)
            except Empty:
                continue
            if "group" in item:  # rank 0's placement group: released however the trial ends
                _running[ctx.get_trial_id()]["group"] = item["group"]
                continue
            checkpoint = item["checkpoint"]
            if checkpoint is None:
                tune.report(item["metrics"])
                continue
            # Tune copies the checkpoint into the trial's directory; the Train run's copy then goes.
            tune.report(item["metrics"], checkpoint=tune.Checkpoint(path=checkpoint.path, filesystem=checkpoint.filesystem))
            checkpoint.filesystem.delete_dir(checkpoint.path)
        thread.join()
    finally:
        release()
    if failed:
        raise RuntimeError(f"data-parallel training failed: {_root_cause(failed[0])}") from failed[0]


def _root_cause(error: BaseException) -> str:
    """The workers' own error (e.g. a NaN loss), not Ray Train's wrapper around it."""
    text = str(error)
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and not line.startswith(("File ", "^", "~", "Traceback")) and ":" in line:
            return line
    return text.splitlines()[0] if text else type(error).__name__


def worker_placement(where: dict) -> dict:
    """Where every worker runs, gathered from all of them: nodes and GPU ids in rank order."""
    import torch.distributed as dist

    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, where)
    return {
        **where,  # rank 0's own device and precision (every worker resolves the same way)
        # Tune overwrites node_ip in results with the driver's; the workers' go under their own key.
        "worker_ips": ",".join(w["node_ip"] for w in everyone),
        "node_id": ",".join(w["node_id"] for w in everyone),
        "gpu_ids": ";".join(w["gpu_ids"] for w in everyone),
        "cuda_visible_devices": ";".join(w["cuda_visible_devices"] for w in everyone),
        "workers": len(everyone),
        "backend": dist.get_backend(),
    }


def _worker(config: dict) -> None:
    """One data-parallel process of a trial (Ray Train's train_loop_per_worker)."""
    import ray.train
    import torch
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment
    from ray.util import get_current_placement_group

    from model.train import Distributed, fit, set_threads
    from search.tune.placement import placement
    from search.tune.trial import report_validation, resume_state, trial_metrics, validation_line

    cfg: PairtuneConfig = config["cfg"]
    trial_cfg = with_params(cfg, config["params"])
    train_ctx = ray.train.get_context()
    rank, world = train_ctx.get_world_rank(), train_ctx.get_world_size()
    if rank == 0:
        config["queue"].put({"group": get_current_placement_group()})
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    set_threads(cfg.search.cpus_per_trial / world)
    data = config["prepared"].fold_inputs(trial_cfg.model.backbone, trial_cfg.data.lowercase)
    use_gpu = cfg.search.gpus_per_trial > 0
    where = worker_placement(placement(use_gpu, trial_cfg.train.precision))
    name, config_dict = config["trial_name"], trial_cfg.to_dict()

    def on_result(r, module) -> None:
        metrics = {**trial_metrics(r, cfg.search.cpus_per_trial, cfg.search.gpus_per_trial), **where}
        if rank == 0:  # straight to the process's stdout: Ray Train's patched print would log it twice
            line = validation_line(name, r, {**where, "node_ip": where["worker_ips"]})
            sys.__stdout__.write(f"{line} ({world} workers)\n")
            sys.__stdout__.flush()
        report_validation(ray.train.report, ray.train.Checkpoint, r, module, config_dict, metrics, rank0=rank == 0)

    logger = False
    if rank == 0 and config["trial_dir"] and os.path.isdir(config["trial_dir"]):  # rank 0 on the driver's node
        from pytorch_lightning.loggers import TensorBoardLogger

        logger = TensorBoardLogger(save_dir=config["trial_dir"], name="lightning", version="")

    class Strategy(RayDDPStrategy):
        """Ray's DDP strategy puts the model on the worker's GPU whenever Ray gave it one; a GPU that
        CUDA cannot see (declared, not real) leaves it on the CPU, as in a one-process trial."""

        @property
        def root_device(self):
            return super().root_device if where["device"] == "cuda" else torch.device("cpu")

    strategy = Strategy()
    # The trial's start, in this process's clock (start-up includes the workers' own start).
    started_at = time.perf_counter() - (time.time() - config["started"])
    with resume_state(config["checkpoint"]) as resume:
        fit(
            trial_cfg.model, trial_cfg.train, data, trial_cfg.data.max_length, on_result,
            logger=logger, use_gpu=use_gpu, started_at=started_at,
            resume_from=resume, monitor=cfg.search.metric,
            distributed=Distributed(rank, world, strategy, [RayLightningEnvironment()]),
        )
