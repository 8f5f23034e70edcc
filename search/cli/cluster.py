"""`pairtune submit`: a search as a Ray job on a cluster (the Jobs API client is search/cli/submit.py)."""

from __future__ import annotations

import shlex

from search.cli.common import add_config_args


def cmd_submit(args) -> int:
    from search.cli.submit import follow, submit

    client, job_id = submit(args.config, args.overrides, args.address, args.working_dir, args.token_file)
    print(f"submitted job {job_id} to {client.get_address()}")
    print(f"follow it with: ray job logs --follow {shlex.quote(job_id)} --address {shlex.quote(client.get_address())}")
    if args.no_wait:
        return 0
    status = follow(client, job_id)
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def submit_args(p) -> None:
    add_config_args(p)
    p.add_argument("--address", default=None,
                   help="dashboard URL (default: RAY_API_SERVER_ADDRESS or RAY_ADDRESS if a URL, else http://127.0.0.1:8265, "
                        "where `ray dashboard cluster.yaml` forwards it)")
    p.add_argument("--working-dir", default=".", help="directory uploaded as the job's working directory; CONFIG must be inside it")
    p.add_argument("--token-file", default=None,
                   help="the cluster's auth token (default: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)")
    p.add_argument("--no-wait", action="store_true", help="submit and return; do not follow the logs")


COMMANDS = {
    "submit": (submit_args, cmd_submit, "run a search as a Ray job on a cluster (validates locally, uploads, follows the logs)",
               "Validate CONFIG here, then submit `pairtune search CONFIG` as a Ray job through the cluster "
               "dashboard's Jobs API, with the working directory uploaded; follow its logs."),
}
