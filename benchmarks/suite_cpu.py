"""Where the test suite's CPU time goes: CPU-seconds per test group, counting every process a test
starts (trial processes, Ray's daemons, CLI subprocesses, browsers), not only the test processes.

    python benchmarks/suite_cpu.py [--out DIR] [--vs OLD/profile.json] [-- PYTEST ARGS]

Runs pytest (default: the README's test command, `-q -n 2 --dist loadgroup --no-loadscope-reorder`)
while a thread reads /proc every half second: each process's CPU time, parent and first sighting.
Each test process (pytest-xdist's workers, or pytest itself without -n) records when each test starts
and ends. A process is charged to the test that was running in the test process it descends from
when it was first seen; a test process's own CPU to the test running in each half second. Processes
that descend from no test process (the machine's own) are left out and their total printed apart.

On these 2-core machines the suite is CPU-bound (both cores ~90% busy), so its wall time follows its
CPU-seconds: this says which tests to look at first. Prints CPU-seconds per group (pytest-xdist's
group: a module, or shared-search) split into test process / started processes, and the 15 costliest
tests; writes DIR/profile.json; with --vs, each group against an earlier profile side by side.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_COMMAND = ["-q", "-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder"]
TIMELINE = "PAIRTUNE_SUITE_CPU_TIMELINE"
TICK_S = 0.5


# ---------------------------------------------------------------- in the test processes (pytest plugin)
_started: dict[str, float] = {}


def pytest_runtest_logstart(nodeid, location):
    _started[nodeid] = time.time()


def pytest_runtest_logfinish(nodeid, location):
    """Appends (pid, test, start, end): the controller of pytest -n logs each test too; its pid is told apart later."""
    path = os.environ.get(TIMELINE)
    if path and nodeid in _started:
        with open(path, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "test": nodeid, "start": _started.pop(nodeid), "end": time.time()}) + "\n")


# ---------------------------------------------------------------- in this process
class Sampler(threading.Thread):
    """Every TICK_S: per process (pid, start tick) its CPU seconds, parent, first sighting, and a
    series of (time, CPU seconds) kept while it changes."""

    def __init__(self):
        super().__init__(daemon=True)
        self.procs: dict[str, dict] = {}
        self.stop = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self, first: bool = False) -> None:
        now = time.time()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:  # ended meanwhile
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            cpu = (int(fields[11]) + int(fields[12])) / self.tick
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            key = f"{d}:{fields[19]}"  # pid and start tick: a reused pid is another process
            p = self.procs.get(key)
            if p is None:
                self.procs[key] = {"pid": int(d), "ppid": int(fields[1]), "seen": now, "cpu0": cpu if first else 0.0,
                                   "cpu": cpu, "series": [(now, cpu)], "name": name}
            else:
                p["name"] = name  # Ray names its workers after they start
                if cpu != p["cpu"]:
                    p["cpu"] = cpu
                    p["series"].append((now, cpu))

    def run(self) -> None:
        self.sample(first=True)
        while not self.stop.wait(TICK_S):
            self.sample()
        self.sample()


START_UP = "(pytest start-up and collection)"
SESSION_END = "(pytest session end)"
CONTROLLER = "(pytest controller)"


def attribute(procs: list[dict], timeline: list[dict], root: int) -> dict:
    """CPU seconds per test: {"tests": {test: {"own": s, "started": s, "kinds": {name: s}}}, "outside": s}.
    procs: as Sampler.procs' values; timeline: the test processes' records; root: the pid that started
    pytest (what descends from it through no test process is pytest's controller's: CONTROLLER)."""
    by_pid = {}
    for p in sorted(procs, key=lambda p: p["seen"]):
        by_pid.setdefault(p["pid"], p)  # a pid's first holder: the one a child saw as its parent first
    logging = {r["pid"] for r in timeline}
    # pytest -n: the controller logs every test its workers ran, and is their parent.
    workers = logging - {by_pid[pid]["ppid"] for pid in logging if pid in by_pid}
    runs = {pid: sorted((r for r in timeline if r["pid"] == pid), key=lambda r: r["start"]) for pid in workers}
    starts = {pid: [r["start"] for r in rs] for pid, rs in runs.items()}

    def test_at(worker: int | str, t: float) -> str:
        if worker == CONTROLLER:
            return CONTROLLER
        i = bisect.bisect_right(starts[worker], t) - 1
        if i < 0:
            return START_UP
        run = runs[worker][i]
        last = run is runs[worker][-1]
        return SESSION_END if last and t > run["end"] + TICK_S else run["test"]

    def worker_of(p: dict) -> int | str | None:
        """The test process p descends from; CONTROLLER for pytest's own others; None: not the suite's."""
        for _ in range(32):
            if p["pid"] in workers:
                return p["pid"]
            if p["ppid"] == root:
                return CONTROLLER
            parent = by_pid.get(p["ppid"])
            if parent is None or parent is p:
                return None
            p = parent
        return None

    tests = defaultdict(lambda: {"own": 0.0, "started": 0.0, "kinds": defaultdict(float)})
    outside = 0.0
    for p in procs:
        if p["pid"] in workers:  # its own CPU, tick by tick, to the test then running
            previous = p["cpu0"]
            for t, cpu in p["series"]:
                if cpu > previous:
                    tests[test_at(p["pid"], t)]["own"] += cpu - previous
                previous = max(previous, cpu)
            continue
        used = p["cpu"] - p["cpu0"]
        worker = worker_of(p)
        if worker is None:
            outside += used
            continue
        row = tests[test_at(worker, p["seen"])]
        row["started"] += used
        row["kinds"][p["name"].split(".")[0][:24]] += used
    return {"tests": {k: {**v, "kinds": dict(v["kinds"])} for k, v in tests.items()}, "outside": outside}


def group_of(test: str) -> str:
    """pytest-xdist's group (the `@group` suffix under --dist loadgroup), else the test's module."""
    return test.rsplit("@", 1)[1] if "@" in test else test.split("::")[0]


def groups(profile: dict) -> dict[str, dict]:
    out = defaultdict(lambda: {"own": 0.0, "started": 0.0})
    for test, row in profile["tests"].items():
        out[group_of(test)]["own"] += row["own"]
        out[group_of(test)]["started"] += row["started"]
    return dict(out)


def report(profile: dict, old: dict | None = None) -> None:
    g = groups(profile)
    total = sum(r["own"] + r["started"] for r in g.values())
    print(f"suite: {profile['wall_s']:.0f} s wall, {total:.0f} CPU-s in the suite's processes "
          f"({total / profile['wall_s'] / (os.cpu_count() or 1):.0%} of {os.cpu_count()} cores); "
          f"outside the suite {profile['outside']:.0f} CPU-s; pytest exit {profile['returncode']}")
    old_g = groups(old) if old else {}
    head = f"{'group':34s} {'CPU-s':>7s} {'share':>6s} {'tests':>7s} {'started':>8s}"
    print(head + (f" {'old CPU-s':>9s} {'new/old':>7s}" if old else ""))
    for name, r in sorted(g.items(), key=lambda x: -(x[1]["own"] + x[1]["started"])):
        cpu = r["own"] + r["started"]
        line = f"{name[:34]:34s} {cpu:7.1f} {cpu / total:6.1%} {r['own']:7.1f} {r['started']:8.1f}"
        if old:
            before = old_g.get(name)
            was = before["own"] + before["started"] if before else 0.0
            line += f" {was:9.1f} {cpu / was:7.2f}" if was else f" {'-':>9s} {'-':>7s}"
        print(line)
    print("\ncostliest tests (CPU-s: test process + started processes, the largest kinds of started process):")
    rows = sorted(profile["tests"].items(), key=lambda x: -(x[1]["own"] + x[1]["started"]))[:15]
    for test, r in rows:
        kinds = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["kinds"].items(), key=lambda x: -x[1])[:4])
        print(f"{r['own'] + r['started']:7.1f}  {test}\n         {r['own']:.0f} in the test process; {kinds}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="where profile.json goes (default: a new temporary directory)")
    ap.add_argument("--vs", type=Path, default=None, help="an earlier profile.json to set each group against")
    ap.add_argument("pytest_args", nargs="*", help="pytest's arguments after --; default: the README's test command")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="suite_cpu_"))
    out.mkdir(parents=True, exist_ok=True)
    timeline = out / "timeline.jsonl"
    timeline.unlink(missing_ok=True)
    env = {**os.environ, TIMELINE: str(timeline), "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))}
    sampler = Sampler()
    sampler.start()
    start = time.time()
    code = subprocess.call([sys.executable, "-m", "pytest", "-p", "suite_cpu", *(args.pytest_args or README_COMMAND)], cwd=ROOT, env=env)
    wall = time.time() - start
    sampler.stop.set()
    sampler.join()
    records = [json.loads(line) for line in timeline.read_text().splitlines()] if timeline.exists() else []
    procs = [p for p in sampler.procs.values() if p["pid"] != os.getpid()]
    profile = {**attribute(procs, records, os.getpid()), "wall_s": wall, "returncode": code, "args": args.pytest_args or README_COMMAND}
    (out / "profile.json").write_text(json.dumps(profile, indent=1))
    report(profile, json.loads(args.vs.read_text()) if args.vs else None)
    print(f"\nwritten: {out / 'profile.json'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
