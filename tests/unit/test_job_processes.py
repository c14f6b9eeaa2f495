"""Processes a run starts die with the process that started them.

A training job orphaned by a killed `labelloop run`, or a coverage study's seed worker orphaned by
a killed study, would run on and write into run folders that the next command resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the death signal is Linux's")


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (a container's pid 1 may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def children_die_with(script: str) -> list[int]:
    """Run `script` (it prints the pids it started, then sleeps), kill it, return the pids still
    running up to a minute later (killing them so the test leaves nothing behind)."""
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO, env=dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'bench'}"))
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert pids and all(alive(p) for p in pids)
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
    deadline = time.monotonic() + 60  # a worker still importing when its study dies exits once it gets to its initializer
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def test_a_job_process_dies_with_the_run_that_started_it():
    assert children_die_with("""
        import subprocess, time
        from labelloop.local.sagemaker_jobs import die_with_parent
        job = subprocess.Popen(["sleep", "120"], preexec_fn=die_with_parent())
        print(job.pid, flush=True)
        time.sleep(120)
    """) == []


def test_a_coverage_study_seed_worker_dies_with_the_study():
    # The worker is busy (as with a seed's run): an idle one would notice its queue close anyway.
    assert children_die_with("""
        import time
        from coverage_study import seed_pool
        pool = seed_pool(2)
        futures = [pool.submit(time.sleep, 120) for _ in range(2)]
        while len(pool._processes) < 2:
            time.sleep(0.1)
        time.sleep(3)  # the workers have run their initializer and taken the sleeps
        print(*pool._processes, flush=True)
        time.sleep(120)
    """) == []
