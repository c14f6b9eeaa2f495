"""Fault suite: bad inputs and injected faults, with one command, and the labels they cost.

  python bench/fault_suite.py [extra pytest args]

Runs tests/faults (bad input lines, inputs changed under a resumed run, failed
training/transform/labeling jobs, partial labeling, a throttled Lambda, malformed algorithm
output, a killed process and its leftovers) and the related unit and e2e tests (settings, the
run lock, the worker page's hardening), then prints one line with the counts: bad inputs tried,
clear errors, faults injected, labels lost, labels corrupted.

A bad input counts as a clear error when its test passed: each such test asserts the error names
the line or setting and the problem, before anyone is paid. A failed bad-input test counts one
bad input tried and no clear error.

Labels lost and corrupted are recomputed here from the runs' folders (kept under a temporary
--basetemp): every human label a labeling job wrote (`labeling/*/manifests/output/output.manifest`)
must be in the run's final or partial output manifest (`output/output.manifest`) with the same
class number (else lost) and the same class name (else corrupted). Both must be 0; the exit
status is non-zero when they are not or when a test fails.
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
    "tests/unit/test_locks.py",
    "tests/unit/test_config.py::test_numeric_settings_are_finite_and_in_range_at_parse_time",
    "tests/unit/test_config.py::test_cli_refuses_non_finite_numbers_before_anything_starts",
    "tests/unit/test_worker_page.py::test_bad_requests_get_a_clear_4xx_and_change_nothing",
    "tests/unit/test_worker_page.py::test_an_image_is_served_only_as_the_file_the_job_started_with",
    "tests/unit/test_worker_page.py::test_a_silent_or_slow_client_is_cut_off_by_the_socket_timeout",
    "tests/unit/test_worker_page.py::test_open_connections_are_capped_and_the_rest_answered_503",
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
    "test_every_key_the_engine_adds_to_a_line_is_reserved": ("bad-input", 3),
    "test_numeric_settings_are_finite_and_in_range_at_parse_time": ("bad-input", 1),  # per case
    "test_cli_refuses_non_finite_numbers_before_anything_starts": ("bad-input", 4),
    "test_processes_started_together_get_one_lock": ("fault", 1),  # per case
    "test_second_bootstrap_in_the_same_lambda_sandbox_asks_step_functions": ("fault", 1),
    "test_s3_executions_started_together_get_one_lock": ("fault", 1),
    "test_local_engine_execution_in_this_process_is_alive": ("fault", 1),
    "test_bad_requests_get_a_clear_4xx_and_change_nothing": ("bad-input", 1),
    "test_an_image_is_served_only_as_the_file_the_job_started_with": ("bad-input", 5),
    "test_a_silent_or_slow_client_is_cut_off_by_the_socket_timeout": ("bad-input", 2),
    "test_open_connections_are_capped_and_the_rest_answered_503": ("bad-input", 1),
}
# Failed tests of these modules were trying bad inputs (one each counted as tried, none as clear).
BAD_INPUT_MODULES = ("test_input_checks", "test_input_checks_lines", "test_changed_inputs", "test_manifest", "test_config", "test_worker_page")
E2E_TRAINING_RUN = ("test_failed_training_job_fails0/out", "label")


def main(argv: list[str]) -> int:
    from labelloop.local.faults import labels_corrupted, labels_lost

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
    unclear = sum(1 for classname, _ in failed if classname.rsplit(".", 1)[-1] in BAD_INPUT_MODULES)
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

    given = lost = corrupted = 0
    for output_dir, attribute in runs:
        if not Path(output_dir).exists():
            continue
        result = labels_lost(output_dir, attribute)
        given += result["given"]
        lost += result["lost"]
        if result["lost"]:
            print(f"LOST {result['lost']} labels in {output_dir}: {result['lost_items']}", file=sys.stderr)
        changed = labels_corrupted(output_dir, attribute)
        corrupted += changed["corrupted"]
        if changed["corrupted"]:
            print(f"CORRUPTED {changed['corrupted']} labels in {output_dir}: {changed['corrupted_items']}", file=sys.stderr)

    print(
        f"\nfault suite: {counts['bad-input'] + unclear} bad inputs tried, {counts['bad-input']} clear errors, "
        f"{counts['fault']} faults injected, {lost} labels lost, {corrupted} labels corrupted "
        f"(of {given} human labels in {len(runs)} fault runs); "
        f"{len(passed)} tests passed, {len(failed)} failed, {seconds:.0f}s; runs kept in {basetemp}"
    )
    return 1 if proc.returncode or failed or lost or corrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
