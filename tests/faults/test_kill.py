"""The process running a local job is killed (SIGKILL) mid-iteration; the same command resumes.

`labelloop run` is started on a small digits subset with simulated annotators and killed, with
its training/transform children, right after the first labeling job wrote its answers. Run
again, the same command must finish, keep every label paid for before the kill, stay within
the human budget and send no item to humans twice.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


from labelloop.datasets.digits import prepare_digits
from labelloop.local.faults import labels_lost, workforce_labels
from labelloop.manifest import item_key

BUDGET = 60


def command(data, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "labelloop.cli", "run",
        "--manifest", str(data.manifest), "--output", str(out),
        "--task-type", "image-classification", "--label-attribute", "digit",
        "--label-config", str(data.label_config), "--truth", str(data.truth),
        "--job-name", "killed", "--human-batch-size", "30", "--human-budget", str(BUDGET),
        "--max-iterations", "2", "--validation-size", "10",
    ]


def test_killed_run_resumes_with_nothing_lost_or_paid_twice(tmp_path, recorder):
    data = prepare_digits(tmp_path / "digits", limit=80)
    out = tmp_path / "run"
    first_answers = None
    proc = subprocess.Popen(command(data, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(out.glob("labeling/*-001-label/manifests/output/output.manifest"))
            if found:
                first_answers = found[0]
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the process and its job subprocesses, as a crash would
        proc.wait()
    assert first_answers is not None, proc.stdout.read().decode()[-2000:]
    assert proc.returncode == -signal.SIGKILL, "the first run must have been killed mid-run"
    assert not (out / "output" / "output.manifest").exists()
    before = workforce_labels(out, "digit")
    assert len(before) == 30

    again = subprocess.run(command(data, out), capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resuming it" in again.stdout

    lines = [json.loads(l) for l in (out / "output" / "output.manifest").read_text().splitlines() if l.strip()]
    assert len(lines) == 80
    by_key = {item_key(l): l for l in lines}
    for key, cls in before.items():  # every label paid for before the kill, unchanged
        assert by_key[key]["digit"] == cls and by_key[key]["digit-metadata"]["human-annotated"] == "yes"
    human = [l for l in lines if l.get("digit-metadata", {}).get("human-annotated") == "yes"]
    assert len(human) <= BUDGET
    # No item went to humans twice: across every routed batch and every labeling job's answers.
    routed = Counter(
        json.loads(t)["labelloop-id"]
        for p in out.glob("iterations/*/human-input.manifest") for t in p.read_text().splitlines() if t.strip()
    )
    assert routed and max(routed.values()) == 1, routed.most_common(3)
    answered = Counter()
    for p in out.glob("labeling/*/manifests/output/output.manifest"):
        answered.update(item_key(json.loads(t)) for t in p.read_text().splitlines() if "\"digit\"" in t)
    assert max(answered.values()) == 1
    assert sum(answered.values()) == len(human)
    loss = labels_lost(out, "digit")
    assert loss["lost"] == 0, loss
    recorder("fault", 1, output_dir=out, attribute="digit", injected=["process-killed"])
