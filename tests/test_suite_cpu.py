"""benchmarks/suite_cpu.py's bookkeeping: which test each process's CPU time is charged to."""

import pytest
from conftest import benchmark_module


@pytest.fixture(scope="module")
def suite_cpu():
    return benchmark_module("suite_cpu")


def proc(pid, ppid, seen, cpu, cpu0=0.0, series=None, name="python"):
    return {"pid": pid, "ppid": ppid, "seen": seen, "cpu0": cpu0, "cpu": cpu, "series": series or [(seen, cpu)], "name": name}


def test_each_process_is_charged_to_the_test_running_in_the_test_process_it_descends_from(suite_cpu):
    """pytest -n 2 started by pid 1: controller 10, workers 11 (tests a then b) and 12 (test c)."""
    a, b, c = "tests/test_x.py::test_a@shared-search", "tests/test_x.py::test_b@shared-search", "tests/test_y.py::test_c"
    timeline = [{"pid": 11, "test": a, "start": 0.0, "end": 10.0}, {"pid": 11, "test": b, "start": 10.0, "end": 20.0},
                {"pid": 12, "test": c, "start": 0.0, "end": 20.0}]
    timeline += [{**r, "pid": 10} for r in timeline]  # the controller logs every test too
    procs = [
        proc(10, 1, -5.0, 3.0),  # the controller: its own time apart
        proc(11, 10, -4.0, 9.0, cpu0=1.0, series=[(-4.0, 1.0), (-1.0, 2.0), (5.0, 4.0), (15.0, 9.0)]),  # its own, tick by tick
        proc(12, 10, -4.0, 2.0, series=[(-4.0, 0.0), (8.0, 2.0)]),
        proc(20, 11, 3.0, 5.0, name="raylet"),  # started by test a ...
        proc(21, 20, 12.0, 8.0, name="ray::PairtuneTrainable.train"),  # ... its child, first seen while b ran: b's
        proc(30, 12, 25.0, 1.5),  # after the last test of worker 12: the session's end
        proc(40, 2, 0.0, 50.0, name="kdamond"),  # the machine's own
    ]
    got = suite_cpu.attribute(procs, timeline, root=1)
    tests = got["tests"]
    assert got["outside"] == 50.0
    assert tests[suite_cpu.START_UP]["own"] == 1.0  # worker 11 before its first test (1.0 was spent before sampling)
    assert tests[a]["own"] == 2.0 and tests[a]["started"] == 5.0 and tests[a]["kinds"] == {"raylet": 5.0}
    assert tests[b]["own"] == 5.0 and tests[b]["started"] == 8.0 and tests[b]["kinds"] == {"ray::PairtuneTrainable": 8.0}
    assert tests[c]["own"] == 2.0 and tests[suite_cpu.SESSION_END]["started"] == 1.5
    assert tests[suite_cpu.CONTROLLER]["started"] == 3.0
    assert suite_cpu.groups(got)["shared-search"] == {"own": 7.0, "started": 13.0}
    assert suite_cpu.groups(got)["tests/test_y.py"] == {"own": 2.0, "started": 0.0}
