"""Run directories on local disk or on shared storage (s3://, gs://, file://, any pyarrow filesystem URI).

A multi-node search writes to storage every node can reach; pairtune reads it back (export, status)
from any machine with access. Local paths stay `pathlib.Path`s, so single-machine runs keep working
exactly as before; URIs stay strings and go through `pyarrow.fs`, the layer Ray Tune itself uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from search.config.parse import ConfigError

# What `export` and `status` need from a run; checkpoints and TensorBoard events stay in storage.
SKIP_DIRS = ("checkpoint_", "lightning")
SKIP_FILES = ("events.out.tfevents",)
# ... except these small files of a checkpoint: a best validation's scores, which the intervals read.
KEPT_FROM_CHECKPOINTS = ("val_scores.npy",)


def is_uri(path) -> bool:
    return "://" in str(path)


def _split(uri) -> tuple[str, str]:
    """A URI's path part (no trailing slash) and its query (`?endpoint_override=...`, kept as is)."""
    base, sep, query = str(uri).partition("?")
    return base.rstrip("/"), sep + query


def location(path) -> Path | str:
    """A run or storage location: an absolute Path for local paths, the URI (no trailing slash) otherwise."""
    if is_uri(path):
        return "".join(_split(path))
    return Path(os.path.expanduser(str(path))).resolve()


def join(base, *parts: str) -> Path | str:
    if is_uri(base):
        path, query = _split(base)
        return "/".join([path, *parts]) + query
    return Path(base).joinpath(*parts)


def parent(path) -> str:
    if is_uri(path):
        base, query = _split(path)
        return base.rsplit("/", 1)[0] + query
    return str(Path(path).parent)


def name(path) -> str:
    return _split(path)[0].rsplit("/", 1)[-1] if is_uri(path) else Path(path).name


def filesystem(path):
    """(pyarrow filesystem, path inside it) for a local path or URI."""
    import pyarrow.fs as pafs

    if is_uri(path):
        return pafs.FileSystem.from_uri(str(path))
    return pafs.LocalFileSystem(), str(path)


def exists(path) -> bool:
    import pyarrow.fs as pafs

    fs, p = filesystem(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def makedirs(path) -> None:
    fs, p = filesystem(path)
    fs.create_dir(p, recursive=True)


def read_text(path) -> str:
    return read_bytes(path).decode("utf-8")


def _output(path):
    """An output stream at path, its directory created first (local filesystems need it)."""
    fs, p = filesystem(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    return fs.open_output_stream(p)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data: bytes) -> None:
    with _output(path) as f:
        f.write(data)


def read_bytes(path) -> bytes:
    fs, p = filesystem(path)
    with fs.open_input_stream(p) as f:
        return f.read()


def append_line(path, line: str) -> None:
    """Append a line; object stores cannot append, so there the file is rewritten whole (small files only)."""
    if not is_uri(path):
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        return
    old = read_text(path) if exists(path) else ""
    write_text(path, old + line + "\n")


def list_names(path) -> list[str]:
    """Names directly under a directory (empty when it does not exist)."""
    import pyarrow.fs as pafs

    if not is_uri(path):  # os.listdir: pyarrow's listing can fail on a directory another process creates
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []

    fs, p = filesystem(path)
    infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True))
    return sorted(i.base_name for i in infos)


def driver_dir(run) -> Path:
    """Where the driver writes run files that need a local file (W&B's offline runs, MLflow's SQLite
    store): the run itself when it is local; for a URI, a directory on this machine that
    `sync_driver_files` copies into the run."""
    if not is_uri(run):
        return Path(run)
    path, _ = _split(run)
    safe = path.replace("://", "/").replace("/", "_")
    local = Path(os.environ.get("PAIRTUNE_CACHE", Path.home() / ".cache" / "pairtune")) / "runs" / safe
    local.mkdir(parents=True, exist_ok=True)
    return local


def sync_driver_files(run) -> None:
    """Copy what the driver wrote in driver_dir(run) into a run on shared storage (nothing to do locally)."""
    if is_uri(run) and any(driver_dir(run).iterdir()):
        upload(driver_dir(run), run)


def has_experiment(run) -> bool:
    return any(n.startswith("experiment_state-") and n.endswith(".json") for n in list_names(run))


def probe_writable(directory, keep: bool = True) -> str | None:
    """Create a local directory (mkdir -p) and write and delete a file in it: None when that works,
    else why not; keep=False removes the directories it made. URIs are not probed here (credentials
    may exist only on the cluster); claiming the run directory (fresh_run) is their first write,
    still before Ray starts."""
    if is_uri(directory):
        return None
    path = Path(directory)
    made = [p for p in [path, *path.parents] if not p.exists()]  # deepest first
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".pairtune-probe-"):
            pass
    except OSError as e:
        return e.strerror or str(e)
    finally:
        if not keep:
            for p in made:
                with contextlib.suppress(OSError):
                    p.rmdir()
    return None


def require_writable(directory, keep: bool = True, flag: str = "--out") -> None:
    """probe_writable, or a ConfigError naming the directory (and the option that named it) and why
    not: for a command's output directory, before the work it would hold is done. keep=False: only
    checked (the command makes it when it writes)."""
    why = probe_writable(directory, keep=keep)
    if why:
        named = f"{flag} {directory}" if flag else str(directory)
        raise ConfigError([f"{named}: cannot create it and write there ({why})"])


CLAIMS_DIR = ".pairtune_claims"  # on shared storage: one file per search that tried to claim the directory
CLAIM_SETTLE_S = 2.0  # how long a claimant on shared storage waits for rivals' claims to become visible


def claim(directory, file_name: str, text: str) -> bool:
    """Create directory/file_name holding `text`, only if no one has: True for exactly one of several
    searches claiming one run directory at once (False: someone else has it).

    Local paths use O_CREAT | O_EXCL, atomic on POSIX filesystems (NFS v3 and later too). Object
    stores (s3://, gs://) have no exclusive create: each claimant writes a claim file named by its
    clock and a random token, waits CLAIM_SETTLE_S for rivals' claims to become visible, and proceeds
    only if its claim is the earliest listed (claims stay, so a later claimant always sees an earlier
    one). The limit: two machines whose clocks differ by more than the gap between their claims can
    both win (both see their own claim first)."""
    target = join(directory, file_name)
    if not is_uri(directory):
        Path(directory).mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return True
    if exists(target):
        return False
    mine = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
    write_text(join(directory, CLAIMS_DIR, mine), "")
    time.sleep(CLAIM_SETTLE_S)
    if list_names(join(directory, CLAIMS_DIR))[0] != mine or exists(target):
        return False
    write_text(target, text)
    return True


def delete_dir(path) -> None:
    fs, p = filesystem(path)
    fs.delete_dir(p)


def download(run, local_dir: str | Path) -> Path:
    """Copy a run's results (everything but checkpoints, bar their kept scores, and TensorBoard events)
    to a local directory."""
    import pyarrow.fs as pafs

    fs, root = filesystem(run)
    local_dir = Path(local_dir)
    root = root.rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    if not infos:
        raise FileNotFoundError(f"{run}: nothing there")
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(root):].lstrip("/")
        parts = rel.split("/")
        skipped = any(part.startswith(SKIP_DIRS) for part in parts[:-1]) and parts[-1] not in KEPT_FROM_CHECKPOINTS
        if skipped or parts[-1].startswith(SKIP_FILES):
            continue
        target = local_dir.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return local_dir


def upload(local_dir: str | Path, target) -> None:
    """Copy a local directory's files to a local path or URI."""
    for path in sorted(Path(local_dir).rglob("*")):
        if path.is_file():
            dest = join(target, *path.relative_to(local_dir).parts)
            if is_uri(dest):
                with open(path, "rb") as src, _output(dest) as dst:
                    shutil.copyfileobj(src, dst)
            else:
                Path(dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)


@contextlib.contextmanager
def local_view(run):
    """The run as a local directory: itself when local, else a temporary copy of its results."""
    run = location(run)
    if not is_uri(run):
        yield run
        return
    with tempfile.TemporaryDirectory(prefix="pairtune-run-") as tmp:
        yield download(run, Path(tmp) / name(run))


def prune_checkpoints(fs, trial_path: str, score_key: str, resume_file: str) -> None:
    """Keep only a finished trial's best checkpoint, without its resume state, on any pyarrow filesystem
    (local or shared storage). Only a new best validation saves weights and scores, so the candidates are
    the checkpoints holding either, and the best is the one whose metrics.json has the highest score_key."""
    import pyarrow.fs as pafs

    from model.checkpoint import METRICS, WEIGHTS

    infos = fs.get_file_info(pafs.FileSelector(trial_path, allow_not_found=True))
    dirs = sorted(i.path for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_"))
    scores = {}
    for d in dirs:
        if any(fs.get_file_info(f"{d}/{f}").type == pafs.FileType.File for f in (WEIGHTS, *KEPT_FROM_CHECKPOINTS)):
            with fs.open_input_stream(f"{d}/{METRICS}") as f:
                scores[d] = json.loads(f.read().decode("utf-8"))[score_key]
    best = max(scores, key=scores.get, default=None)
    for d in dirs:
        if d != best:
            fs.delete_dir(d)
    if best is not None and fs.get_file_info(f"{best}/{resume_file}").type == pafs.FileType.File:
        fs.delete_file(f"{best}/{resume_file}")
