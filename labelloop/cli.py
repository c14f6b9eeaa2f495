"""labelloop command line: prepare datasets, run the labeling loop locally."""

from __future__ import annotations

import argparse
import json
import secrets
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labelloop import cli_run, layout, metrics_table, tasks
from labelloop.calibration import BOUNDS
from labelloop.cli_help import LABEL_ATTRIBUTE_HELP, TASK_TYPE_HELP, use_everywhere
from labelloop.cli_run import add_cost_options, summary_lines
from labelloop.config import CALIBRATION_METHODS, CALIBRATION_SCOPES, VALIDATION_POLICIES, ConfigurationError
from labelloop.local.outcome import EXIT_CODES_HELP, EXIT_INTERRUPTED, STOPPED_LINE
from labelloop.prepare_cli import add_prepare_command, prepare
from labelloop.promise import start_line
from labelloop.selection import STRATEGIES


class _Progress:
    """Prints one line per iteration as the loop reports it."""

    def __init__(self, stream=None, settings: dict[str, Any] | None = None):
        self.settings = settings or {}
        self.columns = metrics_table.columns(self.settings, terminal=True)
        self.header = f"{metrics_table.text_header(self.columns)} {'elapsed':>8}"
        self.started = time.monotonic()
        self.stream = stream or sys.stdout  # looked up now: whoever redirected stdout gets the lines
        self.rows: list[dict[str, Any]] = []

    def __call__(self, state: str, result: dict[str, Any]) -> None:
        if state == "Bootstrap":
            s = result["state"]
            print(f"input: {s['Total']} items ({s['PreLabeled']} already labeled, {s['Rejected']} rejected)", file=self.stream)
            promise = start_line(self.settings, s["Total"])
            if promise:
                print(promise, file=self.stream)
            print(self.header, file=self.stream)
        elif state == "GateAndRoute":
            m = result["LastMetrics"]
            self.rows.append(m)
            print(f"{metrics_table.text_row(m, self.columns)} {time.monotonic() - self.started:>7.1f}s", file=self.stream,
                  flush=True)
        elif state == "ExportOutput" and result.get("FinalHumanBatch"):  # the loop ended on a human batch
            self.rows.append(result["FinalHumanBatch"])
            print(f"{metrics_table.text_row(self.rows[-1], self.columns)} {time.monotonic() - self.started:>7.1f}s", file=self.stream,
                  flush=True)


def _workforce(args: argparse.Namespace, execution_input: dict[str, Any]):
    """The local workforce the labeling jobs go to, and the true labels if there are any."""
    from labelloop.truth import truth_for_run

    truth = None
    if args.truth:  # checked against the manifest and the categories before anyone is asked
        truth, covered = truth_for_run(args.truth, execution_input, simulated=args.workforce == "simulated")
        print(covered)
    if args.workforce == "simulated":
        if truth is None:
            raise ConfigurationError("--workforce simulated needs --truth (the true labels file)")
        from labelloop.local.workforce import SimulatedWorkforce

        kinds = tasks.get(args.task_type).simulated_annotators
        if args.simulated_annotator is not None and args.simulated_annotator not in kinds:
            raise ConfigurationError(f"--simulated-annotator {args.simulated_annotator}: {args.task_type} has "
                                     + (f"{', '.join(kinds)}" if kinds else "one kind of simulated annotator only"))
        return SimulatedWorkforce(truth, accuracy=args.annotator_accuracy, seed=args.seed,
                                  annotator=args.simulated_annotator), truth
    from labelloop.local.worker_page import PeopleWorkforce

    workforce = PeopleWorkforce(
        port=args.port,
        on_ready=lambda url: print(f"worker page (open it in a browser on this machine): {url}", flush=True),
        on_job=lambda name, n, url: print(f"  {n} items waiting for people ({name})", flush=True),
    )
    return workforce, truth


def run_local(args: argparse.Namespace) -> int:
    from labelloop.local import outcome
    from labelloop.local.engine import LocalEngine
    from labelloop.local.workforce import WorkforceError

    output = Path(args.output).resolve()
    if Path(layout.settings_uri(str(output))).exists():
        print(f"labelloop: {output} holds an earlier run of this job: resuming it (every label is kept)")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"labelloop: --output {output}: cannot be the run's folder ({exc.strerror or exc})", file=sys.stderr)
        return 2
    try:
        execution_input = cli_run.execution_input(args, output)
        workforce, truth = _workforce(args, execution_input)
        if hasattr(workforce, "start"):
            workforce.start()
    except (ConfigurationError, WorkforceError, ValueError) as exc:
        print(f"labelloop: {exc}", file=sys.stderr)
        return 2
    progress = _Progress(settings=execution_input)
    work = Path(layout.local_work_dir(str(output)))
    engine = LocalEngine(work, workforce, on_step=progress, debug=getattr(args, "debug", False))
    # Unique per execution: two runs started in the same second must not share a name (or a lock).
    name = f"{args.job_name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    print(f"labelloop: running {name} locally; artifacts in {output}")
    try:
        result = engine.run(execution_input, name=name)
    except KeyboardInterrupt:
        outcome.record(output, name, "stopped", STOPPED_LINE, EXIT_INTERRUPTED)
        raise
    finally:
        if hasattr(workforce, "close"):
            workforce.close()
    (work / "execution-history.json").write_text(json.dumps(result.history, default=str, indent=1))
    if result.status != "SUCCEEDED":
        failure = outcome.failure_of(result.history, result.error, result.cause)
        line = failure.line(outcome.rejected_lines_file(output))
        if getattr(args, "debug", False):
            print(f"execution {result.status} in state {failure.state}:\n{failure.detail}", file=sys.stderr)
        print(line, file=sys.stderr)
        outcome.record(output, name, "failed", line, failure.exit_code)
        return failure.exit_code
    outcome.record(output, name, "succeeded", None, 0)
    lines = summary_lines(args, result.summary, execution_input, truth, workforce.answered, result.seconds, progress.rows)
    print("\n".join(lines))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return run_local(args)


def cmd_demo(args: argparse.Namespace) -> int:
    output = args.output or f"runs/digits-demo-{datetime.now():%Y%m%d-%H%M%S}"
    prep = argparse.Namespace(dataset="digits", out=args.data, limit=None, seed=args.seed, source=None)
    try:
        prepared = prepare(prep)
    except OSError as exc:  # --data where no folder can be written: one line, no trace
        print(f"labelloop: cannot prepare the digits in {args.data}: {exc}", file=sys.stderr)
        return 2
    run = build_parser().parse_args(
        [
            "run", "--manifest", str(prepared.manifest), "--output", output,
            "--task-type", prepared.task_type, "--label-attribute", "digit",
            "--label-config", str(prepared.label_config), "--truth", str(prepared.truth),
            "--job-name", "digits-demo", "--human-batch-size", str(args.human_batch_size),
            "--seed", str(args.seed),
        ]
    )
    run.debug = args.debug
    try:
        return cmd_run(run)
    except KeyboardInterrupt:
        # The default run folder is named by the time: the same command would start anew.
        again = ["labelloop", "demo", "--data", args.data, "--output", output,
                 "--human-batch-size", str(args.human_batch_size), "--seed", str(args.seed)]
        print(f"labelloop: stopped; to resume (every label so far is kept): {shlex.join(again)}", file=sys.stderr)
        return EXIT_INTERRUPTED


DEBUG_HELP = "on failure, print the engine's whole report (error, stack trace, job description), not one line"


def _choices_help(choices: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in sorted(choices.items())).replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelloop",
        description="Active-learning data labeling: humans label what the model is unsure of, "
        "the model labels what it is sure of, at a calibrated accuracy target.",
    )
    parser.add_argument("--version", action="version", version=f"labelloop {version()}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run a labeling job locally (the real state machine, offline)",
        description="Run the active-learning state machine on this machine: Lambda steps in-process, "
        "training and batch transform in subprocesses, humans simulated from true labels or people on a "
        "local worker page. Stopped (Ctrl-C) or failed, the same command resumes with every label kept.",
        epilog=EXIT_CODES_HELP,
    )
    run.add_argument("--manifest", required=True, help="input manifest (Ground Truth JSON Lines): local path or s3:// URI")
    run.add_argument("--output", required=True,
                     help="folder for every artifact of the run; a folder holding an earlier run of the same job resumes it")
    run.add_argument("--task-type", required=True, choices=tasks.names(), help=TASK_TYPE_HELP)
    run.add_argument("--label-attribute", required=True, help=LABEL_ATTRIBUTE_HELP)
    labels = run.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help="label categories, comma-separated, in class-index order")
    labels.add_argument("--label-config", help="Ground Truth label category config file (JSON)")
    run.add_argument("--job-name", default="labelloop", help="job name (letters, digits, hyphens; ≤ 32)")
    run.add_argument("--human-batch-size", type=int, default=100, help="items sent to humans per iteration")
    add_cost_options(run)
    run.add_argument("--max-percentage-labeled", type=int, default=None,
                     help="stop once this percentage of the dataset is labeled (MaxPercentageOfInputDatasetLabeled)")
    run.add_argument("--target-accuracy", "--target-iou", type=float, default=None,
                     help="what the auto-labels must meet: the task type's own target unless given (accuracy 0.95 "
                     "for classification, a mean IoU of 0.6 for boxes and 0.7 for masks, as Ground Truth)")
    run.add_argument("--confidence", type=float, default=0.95,
                     help="confidence with which the threshold must meet the target (lower-bound test)")
    run.add_argument("--calibration", choices=sorted(CALIBRATION_METHODS), default="lower-bound",
                     help="how the auto-label threshold is chosen: " + _choices_help(CALIBRATION_METHODS))
    run.add_argument("--calibration-scope", choices=sorted(CALIBRATION_SCOPES), default="job",
                     help="what the lower bound vouches for: " + _choices_help(CALIBRATION_SCOPES))
    run.add_argument("--per-class", action="store_true",
                     help="promise the target for every class's auto-labels, not only for all of them together "
                          "(classification; job or iteration scope): each class is tested on the validation items the "
                          "model gives it at confidence 1 - (1 - --confidence) / classes, so it needs more validation "
                          "labels (10 classes at 95 %%/95 %%: 104 a class), and the adaptive policy's validation set "
                          "grows to hold that many for every class unless --validation-size is given")
    run.add_argument("--iou-bound", choices=sorted(BOUNDS), default=None,
                     help="boxes and masks: the bound on the auto-labels' mean IoU (default: betting for masks, "
                          "hoeffding-bentkus for boxes and under --calibration-scope cumulative): " + _choices_help(BOUNDS))
    run.add_argument("--slack-reserve", type=float, default=0.0,
                     help="cumulative scope: share of the accuracy slack (1 - target) kept back while the pool is full, "
                          "released as it empties (0: none)")
    run.add_argument("--retrain-before-routing", type=float, default=0.5, metavar="GROWTH",
                     help="cumulative scope: when the validation items a gate retires grow the training set by this "
                          "share or more, train on them and gate again before routing anyone (0: never)")
    run.add_argument("--no-worst-case-tail", action="store_true",
                     help="cumulative scope: do not auto-label the items still open when the slack the bound leaves "
                          "above the target covers all of them, each counted as an error (the promise holds either way)")
    run.add_argument("--full-tail-batch", action="store_true",
                     help="route a full --human-batch-size even when few uncertain items are left (by default, with "
                          "fewer than two batches of them left, a batch holds half of them, and with at most half a "
                          "batch left, twice their number, at least a quarter batch)")
    run.add_argument("--margin-threshold", type=float, default=0.5, help="fixed-margin calibration's margin")
    run.add_argument("--validation-policy", choices=sorted(VALIDATION_POLICIES), default="adaptive",
                     help="which human labels judge the model: " + _choices_help(VALIDATION_POLICIES))
    run.add_argument("--validation-size", type=int, default=None,
                     help="adaptive policy: validation labels to hold, drawn at random from the unlabeled items "
                          "(default: 400, or 1.5 %% of a dataset over 26,667 items, at most 2,000)")
    run.add_argument("--validation-fraction", type=float, default=None,
                     help="ground-truth / frozen-first policies: share of human labels held out (default: the policy's rule)")
    run.add_argument("--strategy", choices=sorted(STRATEGIES), default="least-confidence",
                     help="how uncertain items are ranked for humans")
    run.add_argument("--random-fraction", type=float, default=0.1,
                     help="least share of each human batch drawn at random from the unlabeled pool")
    run.add_argument("--no-class-balance", action="store_true",
                     help="do not reserve a share of each human batch for every predicted class")
    run.add_argument("--diversity", action="store_true",
                     help="fill the uncertain slots with a k-center cover (on class probabilities) of the most uncertain items")
    run.add_argument("--initial-model", default=None,
                     help="pre-labeling: a model.tar.gz (e.g. an earlier run's final model) to judge and use in iteration 1")
    run.add_argument("--max-iterations", type=int, default=50, help="stop after this many iterations")
    run.add_argument("--workers-per-object", type=int, default=1, help="annotators per item (answers consolidated by vote)")
    run.add_argument("--seed", type=int, default=0, help="seed for sampling, splits and training")
    run.add_argument("--workforce", choices=["simulated", "people"], default="simulated",
                     help="who answers the human tasks: simulated annotators (need --truth), or people on a local worker page")
    run.add_argument("--port", type=int, default=0, help="people: worker page port on 127.0.0.1 (default: 0, any free port)")
    run.add_argument("--truth",
                     help="true labels: `labelloop prepare`'s truth.jsonl ({\"key\", \"label\"} a line; a text's key is "
                     "sha256:<hex of the text>, an image's its source-ref) or a labeled Ground Truth manifest of the same "
                     "items, checked before the run starts; answers for simulated annotators, with people only used to "
                     "score the result")
    run.add_argument("--annotator-accuracy", type=float, default=1.0,
                     help="chance a simulated annotator answers correctly (masks by clicks: that each click lands "
                          "where it was meant)")
    run.add_argument("--simulated-annotator", default=None, metavar="KIND",
                     help="masks: 'clicks' (default: the click tool, each object's extreme points and corrections "
                          "until IoU 0.85, cost counted in clicks) or 'painter' (the true mask, its boundaries ragged)")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    run.set_defaults(func=cmd_run)

    add_prepare_command(sub)

    demo = sub.add_parser(
        "demo",
        help="prepare scikit-learn's digits and label them locally with simulated annotators",
        description="The quickest look at labelloop: write scikit-learn's 1,797 handwritten digits as PNGs with "
        "a manifest (labelloop prepare digits), then label them with the local state machine, a small CNN and "
        "simulated annotators answering from the true labels (labelloop run). It prints one line per "
        "iteration and a summary; `labelloop report OUTPUT` then draws the run.",
        epilog=EXIT_CODES_HELP,
    )
    demo.add_argument("--data", default="data/digits", help="where to write the prepared dataset")
    demo.add_argument("--output", help="run folder (default: runs/digits-demo-<date>-<time>)")
    demo.add_argument("--human-batch-size", type=int, default=100, help="items sent to humans per iteration")
    demo.add_argument("--seed", type=int, default=0, help="seed for sampling, splits and training")
    demo.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    demo.set_defaults(func=cmd_demo)

    from labelloop.aws_cli import add_aws_commands
    from labelloop.report import add_report_command

    add_report_command(sub)
    add_aws_commands(sub)
    use_everywhere(parser)
    return parser


def version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    from importlib import metadata

    try:
        return metadata.version("labelloop")
    except metadata.PackageNotFoundError:
        from labelloop import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (BotoCoreError, ClientError) as exc:  # start, status, prepare-deploy: no credentials, no network, denied
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc()
        print(f"labelloop: {args.command}: AWS: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exc()
        print(STOPPED_LINE if args.command in ("run", "demo") else "labelloop: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
