"""`pairtune submit CONFIG`: run a search as a Ray job on a cluster (the Jobs API of its dashboard).

The same as `ray job submit --address URL --working-dir . -- pairtune search CONFIG`, plus: the config is
validated here first (a typo fails in a second, not after the upload), the token is sent for you,
the job gets a readable id, and its logs are followed until it ends.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from search.config.load import load_config
from search.config.parse import ConfigError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"  # where `ray dashboard cluster.yaml` forwards the head's dashboard
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
AGENT_WAIT_S = 120  # how long to wait for a freshly started head to accept jobs


def dashboard_address(address: str | None) -> str:
    """--address, else RAY_API_SERVER_ADDRESS / RAY_ADDRESS when they are dashboard URLs, else loopback."""
    for candidate in (address, os.environ.get("RAY_API_SERVER_ADDRESS"), os.environ.get("RAY_ADDRESS")):
        if candidate and candidate.startswith(("http://", "https://")):
            return candidate.rstrip("/")
        if candidate and candidate is address:
            return "http://" + candidate.rstrip("/")
    return DEFAULT_ADDRESS


def auth_token(token_file: str | None = None) -> str | None:
    """The cluster's token: --token-file, else RAY_AUTH_TOKEN, else RAY_AUTH_TOKEN_PATH, else
    ~/.ray/auth_token (what `ray get-auth-token --generate` writes); None when there is none."""
    if token_file:
        path = Path(token_file).expanduser()
        if not path.exists():
            raise ConfigError([f"{token_file}: token file not found"])
        return path.read_text(encoding="utf-8").strip()
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def job_client(address: str | None, token_file: str | None = None):
    from ray.job_submission import JobSubmissionClient

    token = auth_token(token_file)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return JobSubmissionClient(dashboard_address(address), headers=headers)


def entrypoint(config: str | Path, overrides: list[str], working_dir: str | Path) -> str:
    """`pairtune search CONFIG --set ...` with CONFIG relative to the uploaded working directory."""
    config, working_dir = Path(config).resolve(), Path(working_dir).resolve()
    try:
        relative = config.relative_to(working_dir)
    except ValueError:
        message = (f"{config}: the config must be inside the working directory uploaded to the cluster "
                   f"({working_dir}); move it there or pass --working-dir")
        raise ConfigError([message]) from None
    return shlex.join(["pairtune", "search", relative.as_posix(), *[a for o in overrides for a in ("--set", o)]])


def submit(config: str, overrides: list[str], address: str | None = None, working_dir: str = ".",
           token_file: str | None = None, job_id: str | None = None, env: dict | None = None) -> tuple[object, str]:
    """Validate the config locally, then submit its search as a job; returns (client, job id)."""
    cfg = load_config(config, overrides)  # ConfigError here, before anything is uploaded
    command = entrypoint(config, overrides, working_dir)
    runtime_env = {"working_dir": str(Path(working_dir).resolve()), "env_vars": {"PYTHONUNBUFFERED": "1", **(env or {})}}
    client = job_client(address, token_file)
    job_id = job_id or f"pairtune-{cfg.search.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            client.submit_job(entrypoint=command, runtime_env=runtime_env, submission_id=job_id,
                              metadata={"pairtune_config": str(config), "search_name": cfg.search.name})
            return client, job_id
        except RuntimeError as e:  # a head that has just started: its job agent is not up yet
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def follow(client, job_id: str, out=print, poll_s: float = 2.0, timeout_s: float | None = None) -> str:
    """Print the job's logs as they grow until it ends; returns its final status."""
    shown, deadline = 0, None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(job_id).value)
        logs = client.get_job_logs(job_id)
        if len(logs) > shown:
            out(logs[shown:].rstrip("\n"))
            shown = len(logs)
        if status in TERMINAL:
            return status
        if deadline is not None and time.monotonic() > deadline:
            return status
        time.sleep(poll_s)
