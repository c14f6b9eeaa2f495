"""Ctrl-C on `labelloop run`: one line saying so (no traceback), exit status 130, and the same
command resumes with every label paid for before the interrupt kept.

The interrupt is SIGINT to the whole process group, as a terminal sends it: the job processes
(training, transform) get it too.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fault_helpers import text_dataset

from labelloop.local import outcome
from labelloop.local.faults import labels_lost, workforce_labels

REPO = Path(__file__).resolve().parents[2]
N = 60


def command(data: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "labelloop.cli", "run",
        "--manifest", str(data / "manifest.jsonl"), "--output", str(out),
        "--task-type", "text-classification", "--label-attribute", "category", "--labels", "ham,spam",
        "--truth", str(data / "truth.jsonl"), "--job-name", "interrupted", "--human-batch-size", "20",
        "--validation-size", "5", "--max-iterations", "3",
    ]


def test_ctrl_c_stops_in_one_line_and_the_same_command_resumes(tmp_path, recorder):
    manifest, truth = text_dataset(tmp_path / "data", N)
    (tmp_path / "data" / "truth.jsonl").write_text("".join(json.dumps({"key": k, "label": v}) + "\n" for k, v in truth.items()))
    assert manifest == tmp_path / "data" / "manifest.jsonl"
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "AWS_DEFAULT_REGION": "us-east-1"}
    # Ctrl-C as a terminal delivers it, whatever this test runs under: a shell's background job
    # (`nohup pytest &`) ignores SIGINT, its children inherit that, and Python then never raises
    # KeyboardInterrupt, so the run would go on to the end.
    proc = subprocess.Popen(command(tmp_path / "data", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    answered = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list(out.glob("labeling/*-001-label/manifests/output/output.manifest")):
                answered = True
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    assert answered, stdout[-2000:] + stderr[-2000:]
    assert proc.returncode == outcome.EXIT_INTERRUPTED, stdout[-3000:] + stderr[-3000:]
    assert stderr == outcome.STOPPED_LINE + "\n"
    assert "Traceback" not in stdout
    assert not (out / "output" / "output.manifest").exists(), "the loop must not have gone down its failure path"
    before = workforce_labels(out, "category")
    assert len(before) == 20

    status = subprocess.run([sys.executable, "-m", "labelloop.cli", "status", str(out)], capture_output=True,
                            text=True, env=env, timeout=60)
    assert status.stdout.splitlines()[0].endswith("stopped before the end; the same `labelloop run` command "
                                                  "resumes it, every label kept"), status.stdout

    again = subprocess.run(command(tmp_path / "data", out), capture_output=True, text=True, env=env, timeout=400)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resuming it" in again.stdout and again.stderr == ""
    lines = [json.loads(t) for t in (out / "output" / "output.manifest").read_text().splitlines() if t.strip()]
    assert len(lines) == N
    loss = labels_lost(out, "category")
    assert loss["lost"] == 0, loss
    recorder("fault", 1, output_dir=out, attribute="category", injected=["interrupted"])
