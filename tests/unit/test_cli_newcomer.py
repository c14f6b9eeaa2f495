"""What a newcomer meets on the command line: a failure in one line with its exit status,
--version, help texts that say each default once, and `labelloop status` of a local run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from labelloop import cli, layout
from labelloop.local import outcome
from labelloop.manifest import item_key
from labelloop.run_status import local_state, render_local

REPO = Path(__file__).resolve().parents[2]


def labelloop(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command as a user runs it: its own process, Python's default warning filters."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(PYTHONPATH=str(REPO), AWS_DEFAULT_REGION="us-east-1")
    return subprocess.run([sys.executable, "-m", "labelloop.cli", *argv], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def run_args(manifest: Path, out: Path, truth: Path) -> list[str]:
    return ["run", "--manifest", str(manifest), "--output", str(out), "--task-type", "text-classification",
            "--label-attribute", "c", "--labels", "a,b", "--truth", str(truth)]


def test_an_empty_manifest_fails_in_one_line_with_exit_status_2(tmp_path):
    manifest, truth = tmp_path / "in.manifest", tmp_path / "truth.jsonl"
    manifest.write_text("")
    truth.write_text(json.dumps({"key": item_key({"source": "text 0"}), "label": "a"}) + "\n")
    done = labelloop(*run_args(manifest, tmp_path / "out", truth), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    # The one useful sentence, nothing else: no engine dump, no stack trace, no library warning.
    assert done.stderr == f"labelloop: Bootstrap failed: input manifest {manifest.resolve()} is empty\n"
    assert "Warning" not in done.stdout and "Exception" not in done.stdout

    debug = labelloop("--debug", *run_args(manifest, tmp_path / "out", truth), cwd=tmp_path)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr and "InputManifestError" in debug.stderr
    assert debug.stderr.endswith(f"labelloop: Bootstrap failed: input manifest {manifest.resolve()} is empty\n")

    status = labelloop("status", str(tmp_path / "out"), cwd=tmp_path)
    assert status.returncode == 0
    assert status.stdout.splitlines()[0].endswith(": failed")
    assert f"labelloop: Bootstrap failed: input manifest {manifest.resolve()} is empty" in status.stdout


def test_too_many_invalid_lines_name_the_rejected_lines_file(tmp_path, capsys):
    manifest, truth = tmp_path / "in.manifest", tmp_path / "truth.jsonl"
    lines = [json.dumps({"source": f"text {i}"}) for i in range(8)] + ["not json", '{"text": "no source"}']
    manifest.write_text("\n".join(lines) + "\n")
    truth.write_text("".join(json.dumps({"key": item_key({"source": f"text {i}"}), "label": "a"}) + "\n" for i in range(8)))
    out = tmp_path / "out"
    assert cli.main(run_args(manifest, out, truth)) == outcome.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    rejected = out / "input" / "rejected.manifest"
    assert err.count("\n") == 1 and err.startswith("labelloop: Bootstrap failed: 2 of 10 lines of ")
    assert str(rejected) in err and len(rejected.read_text().splitlines()) == 2


def test_a_failure_found_when_resuming_names_the_job_state():
    """A job an earlier run started is found Failed on resume: a Pass state carries the error."""
    history = [
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "DescribeTrainingJob"}},
        {"type": "TaskStateExited", "stateExitedEventDetails": {"name": "DescribeTrainingJob", "output": "{}"}},
        {"type": "PassStateEntered", "stateEnteredEventDetails": {"name": "ExistingJobFailed"}},
        {"type": "PassStateExited", "stateExitedEventDetails": {"name": "ExistingJobFailed", "output": json.dumps(
            {"error": {"Error": "States.TaskFailed", "Cause": "training job j-003-train ended Failed"}})}},
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "SavePartialOutput"}},
        {"type": "FailStateEntered", "stateEnteredEventDetails": {"name": "LoopFailed"}},
        {"type": "ExecutionFailed", "executionFailedEventDetails": {"error": "LabelingLoopFailed", "cause": "x"}},
    ]
    failure = outcome.failure_of(history, "LabelingLoopFailed", "x")
    assert failure.line() == "labelloop: DescribeTrainingJob failed: training job j-003-train ended Failed"
    assert failure.exit_code == outcome.EXIT_FAILED


def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"labelloop {metadata.version('labelloop')}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_help_says_each_default_once_and_never_an_empty_one():
    parser = cli.build_parser()
    for name, sub in _subcommands(parser).items():
        assert sub.description, f"`labelloop {name} --help` has no description"
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.help:
                continue
            text = formatter._expand_help(action)
            assert "default: None" not in text and "default: False" not in text, (name, text)
            assert text.lower().count("default") <= 1, (name, text)
        sub.format_help()  # renders (a stray % in a help text would raise here)
    assert "exit status" in _subcommands(parser)["run"].format_help()
    assert "130" in _subcommands(parser)["demo"].format_help()


# ---------------------------------------------------------------------------------------------
# status of a local run folder


def _run_folder(root: Path, iterations: int, summary: dict | None = None) -> Path:
    out = root / "run"
    (out / "config").mkdir(parents=True)
    (out / "config" / "settings.json").write_text(json.dumps({"JobName": "mine"}))
    for i in range(1, iterations + 1):
        path = Path(layout.metrics_uri(str(out), i))
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"Iteration": i, "HumanLabeled": 20 * i, "AutoLabeled": 0, "Remaining": 100 - 20 * i,
                                    "ValidationAccuracy": 0.9, "ValidationCount": 10, "HumanCost": 1.6 * i,
                                    "NextHumanBatch": 20}))
    if summary:
        Path(layout.summary_uri(str(out))).parent.mkdir(parents=True)
        Path(layout.summary_uri(str(out))).write_text(json.dumps(summary))
    return out


def _lock(out: Path, pid: int) -> None:
    Path(layout.lock_uri(str(out))).write_text(json.dumps(
        {"Execution": "mine-1", "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:m:mine-1",
         "Host": socket.gethostname(), "OnLambda": False, "Pid": pid, "Since": "2026-11-29T04:00:00+00:00"}))


def test_status_of_a_finished_local_run(tmp_path):
    out = _run_folder(tmp_path, 3, {"StopReason": "all-labeled", "HumanLabeled": 60, "AutoLabeled": 40,
                                    "Unlabeled": 0, "Total": 100, "OutputManifestUri": "/x/output.manifest"})
    text = render_local(out)
    lines = text.splitlines()
    assert lines[0] == f"run in {out} (job mine): finished (all-labeled): 60 human, 40 auto, 0 unlabeled of 100"
    assert [line.split()[0] for line in lines[2:5]] == ["1", "2", "3"]  # one line per iteration
    assert lines[-1] == "output: /x/output.manifest"


def test_status_of_a_run_whose_process_is_alive_or_gone(tmp_path):
    out = _run_folder(tmp_path, 2)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(out, holder.pid)
        state, _ = local_state(out)
        assert state == "running"
        assert "now in iteration 3" in render_local(out)
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone and wrote no end: stopped, and the same command resumes it.
    assert local_state(out)[0] == "stopped"
    assert "the same `labelloop run` command resumes it" in render_local(out).splitlines()[0]
    outcome.record(out, "mine-1", "failed", "labelloop: TrainModel failed: AlgorithmError: boom", outcome.EXIT_FAILED)
    assert local_state(out)[0] == "failed"
    assert "labelloop: TrainModel failed: AlgorithmError: boom" in render_local(out)


def test_status_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path)]) == 2
    assert "nor the --output folder of a labelloop run" in capsys.readouterr().err


def test_after_an_interrupt_no_step_runs_and_the_stop_does_not_wait_for_a_halted_one(tmp_path):
    import threading
    import time

    from labelloop.local.engine import LocalEngine

    engine = LocalEngine(tmp_path / "work", workforce=None)
    calls = []
    engine._handlers["labelloop-Bootstrap"] = lambda event, context: calls.append(event) or {}
    engine._stop(grace_seconds=1)
    step = threading.Thread(target=engine._invoke_lambda, args=(None, "labelloop-Bootstrap", None, b"{}", {}, {}),
                            daemon=True)
    step.start()
    step.join(0.5)
    assert step.is_alive() and calls == [], "the step neither ran nor reported: the loop goes no further"
    started = time.monotonic()
    engine._stop(grace_seconds=5)  # the halted thread holds no lock
    assert time.monotonic() - started < 1


def test_ctrl_c_in_the_demo_names_the_command_that_resumes_it(tmp_path, monkeypatch, capsys):
    """The demo's default run folder is named by the time, so the resuming command must name it."""
    from types import SimpleNamespace

    prepared = SimpleNamespace(manifest=tmp_path / "m", task_type="image-classification",
                               label_config=tmp_path / "l", truth=tmp_path / "t")
    monkeypatch.setattr(cli, "prepare", lambda args: prepared)

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_run", interrupted)
    assert cli.main(["demo", "--data", "data/d"]) == outcome.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("labelloop: stopped; to resume (every label so far is kept): labelloop demo --data data/d "
                          "--output runs/digits-demo-")
    assert err.rstrip().endswith("--human-batch-size 100 --seed 0")


def test_the_demo_with_a_data_folder_it_cannot_write_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    assert cli.main(["demo", "--data", str(tmp_path / "a-file" / "digits")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"labelloop: cannot prepare the digits in {tmp_path / 'a-file' / 'digits'}: ")
    assert err.count("\n") == 1


def test_an_output_folder_that_cannot_be_made_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "m.jsonl").write_text('{"source": "hello"}\n')
    assert cli.main(["run", "--manifest", str(tmp_path / "m.jsonl"), "--labels", "a,b", "--label-attribute", "x",
                     "--task-type", "text-classification",
                     "--output", str(tmp_path / "a-file")]) == 2
    assert capsys.readouterr().err == f"labelloop: --output {tmp_path / 'a-file'}: cannot be the run's folder (File exists)\n"
