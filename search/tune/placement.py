"""Where a trial runs: its node, the GPUs Ray gave it, and the device and precision it trains with.
Imports Ray and torch only (not Lightning), so a task can ask it cheaply."""

from __future__ import annotations

import os

import ray

from model.precision import PrecisionError, cuda_usable, resolve_precision


def placement(use_gpu: bool, precision: str) -> dict:
    """Where this trial runs: node, the GPU ids Ray gave it (Ray also sets CUDA_VISIBLE_DEVICES to
    them, so the trial sees only those), and the device and precision it trains with: a declared GPU
    that is not a real CUDA device falls back to the CPU in fp32."""
    ctx = ray.get_runtime_context()
    on_cuda = use_gpu and cuda_usable()
    where = {
        "node_id": ctx.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "device": "cuda" if on_cuda else "cpu",
    }
    try:
        return {**where, "precision": resolve_precision(precision, on_cuda)}
    except PrecisionError as e:  # an explicit precision is kept, never swapped for another
        gpus = f"Ray gave it GPU {where['gpu_ids'] or 'none'}" if use_gpu else "it has no GPU (search.gpus_per_trial 0)"
        raise PrecisionError(f"{e} (this trial runs on node {where['node_ip']}; {gpus}, which CUDA cannot see). "
                             "train.precision auto trains such a trial on the CPU in fp32 instead") from None
