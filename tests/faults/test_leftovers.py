"""What a killed run leaves behind: half-written files are cleaned by the next run, and job
processes die with the process that started them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from labelloop import steps

DEPLOYMENT = {"Algorithms": {"text-classification": {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/s.tar.gz"}}}
REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie has died; only its exit status waits to be collected


def _wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_temp_files_of_a_killed_write_are_removed_by_the_next_run(tmp_path, recorder):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"text {i}"}) + "\n" for i in range(20)))
    job = {"ManifestUri": str(manifest), "OutputUri": str(tmp_path / "out"), "JobName": "leftovers",
           "TaskType": "text-classification", "LabelAttributeName": "label", "LabelCategories": ["a", "b"]}
    steps.bootstrap({"Input": job, "ExecutionName": "run-1", "Deployment": DEPLOYMENT})
    target = tmp_path / "out" / "iterations" / "001" / "ledger-human.jsonl"
    ready = tmp_path / "ready"
    writer = subprocess.Popen([sys.executable, "-c", f"""
import time
from labelloop import storage
with storage.atomic_file({str(target)!r}) as f:
    f.write(b'{{"id": 0}}' * 1000)
    open({str(ready)!r}, "w").write("x")
    time.sleep(60)
"""], env={**os.environ, "PYTHONPATH": str(REPO)})
    _wait_for(ready)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = [p for p in target.parent.iterdir() if p.name.startswith(".ledger-human.jsonl")]
    assert left and not target.exists(), "the kill left a temp file and no ledger"
    steps.bootstrap({"Input": job, "ExecutionName": "run-2", "Deployment": DEPLOYMENT})
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".ledger-human.jsonl")]
    assert (tmp_path / "out" / "config" / ".lock.json.guard").exists(), "other hidden files are kept"
    recorder("fault", 1)


def test_a_job_process_dies_with_the_process_that_started_it(tmp_path, recorder):
    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", f"""
from pathlib import Path
from labelloop.local.sagemaker_jobs import LocalSageMaker
tmp = Path({str(tmp_path)!r})
LocalSageMaker._run(None, [{sys.executable!r}, "-c", {child!r}], tmp, None, tmp / "log.txt", 120, tmp / "failure")
"""], env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        _wait_for(pid_file)
        pid = int(pid_file.read_text())
        assert not _gone(pid)
        parent.send_signal(signal.SIGKILL)  # the training or transform job's parent is killed
        parent.wait()
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), "the job process outlived its parent"
    finally:
        parent.kill()
        if pid_file.exists() and pid_file.read_text().strip() and not _gone(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    recorder("fault", 1)
