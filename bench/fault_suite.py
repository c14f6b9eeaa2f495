"""Fault suite: bad inputs and injected faults, with one command, and the labels they cost.

  python bench/fault_suite.py [extra pytest args]

Runs tests/faults (bad input lines, failed training/transform/labeling jobs, partial labeling,
a throttled Lambda, malformed algorithm output, a killed process) and the related unit and e2e
tests, then prints one line with the counts: bad inputs tried, faults injected, labels lost.

Labels lost is recomputed here from the runs' folders (kept under a temporary --basetemp):
every human label a labeling job wrote (`labeling/*/manifests/output/output.manifest`) must be
in the run's final or partial output manifest (`output/output.manifest`) with the same class.
It must be 0; the exit status is non-zero when it is not or when a test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TESTS = [
    "tests/faults",
    "tests/unit/test_resume.py",
    "tests/unit/test_handlers_s3.py::test_bad_lines_go_to_the_rejected_manifest",
    "tests/unit/test_handlers_s3.py::test_too_many_bad_lines_fail_the_job",
    "tests/unit/test_handlers_s3.py::test_missing_manifest_and_bad_settings_fail_fast",
    "tests/unit/test_manifest.py",
    "tests/e2e/test_local_loop.py::test_failed_training_job_fails_the_execution_with_the_job_description",
]

# Tests outside tests/faults do not write the record: what each one tries, counted when it passes.
# (test name -> (kind, count)); test_manifest's parametrized line checks count one bad input each.
EXTERNAL = {
    "test_bad_lines_go_to_the_rejected_manifest": ("bad-input", 2),
    "test_too_many_bad_lines_fail_the_job": ("bad-input", 5),
    "test_missing_manifest_and_bad_settings_fail_fast": ("bad-input", 2),
    "test_failed_training_job_fails_the_execution_with_the_job_description": ("fault", 1),
    "test_crash_after_the_labeling_job_keeps_its_answers": ("fault", 1),
    "test_crash_before_the_labeling_job_resends_the_same_batch": ("fault", 1),
}
E2E_TRAINING_RUN = ("test_failed_training_job_fails0/out", "label")


def main(argv: list[str]) -> int:
    from labelloop.local.faults import labels_lost

    work = Path(tempfile.mkdtemp(prefix="labelloop-faults-"))
    record, junit, basetemp = work / "record.jsonl", work / "junit.xml", work / "runs"
    env = dict(os.environ, LABELLOOP_FAULT_RECORD=str(record), PYTHONPATH=str(REPO))
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}",
         f"--junitxml={junit}", *TESTS, *argv],
        cwd=REPO, env=env,
    )
    seconds = time.monotonic() - started

    passed, failed = [], []
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name", "")
            bad = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            (failed if bad else passed if not skipped else []).append((case.get("classname", ""), name))

    counts = {"bad-input": 0, "fault": 0}
    runs: list[tuple[str, str]] = []
    entries = [json.loads(l) for l in record.read_text().splitlines()] if record.exists() else []
    for entry in entries:
        counts[entry["kind"]] += entry["count"]
        if entry.get("output_dir"):
            runs.append((entry["output_dir"], entry["attribute"]))
    for classname, name in passed:
        base = name.split("[", 1)[0]
        if base in EXTERNAL:
            kind, n = EXTERNAL[base]
            counts[kind] += n
        elif classname.endswith("test_manifest") and base == "test_bad_lines_name_line_and_problem":
            counts["bad-input"] += 1
        if base == "test_failed_training_job_fails_the_execution_with_the_job_description":
            runs.append((str(basetemp / E2E_TRAINING_RUN[0]), E2E_TRAINING_RUN[1]))

    given = lost = 0
    for output_dir, attribute in runs:
        if not Path(output_dir).exists():
            continue
        result = labels_lost(output_dir, attribute)
        given += result["given"]
        lost += result["lost"]
        if result["lost"]:
            print(f"LOST {result['lost']} labels in {output_dir}: {result['lost_items']}", file=sys.stderr)

    print(
        f"\nfault suite: {counts['bad-input']} bad inputs tried, {counts['fault']} faults injected, "
        f"{lost} labels lost (of {given} human labels in {len(runs)} fault runs); "
        f"{len(passed)} tests passed, {len(failed)} failed, {seconds:.0f}s; runs kept in {basetemp}"
    )
    return 1 if proc.returncode or failed or lost else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
