"""`labelloop prepare`: a public dataset, a folder of images or a CSV file of texts, made into an
input manifest, a label config and (when the labels are known) a hidden truth file."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

DATASETS = ["digits", "fashion-mnist", "fashion-mnist-detection", "fashion-mnist-segmentation", "spamassassin"]
LABEL_ATTRIBUTE = "label"  # what the next command suggests for the user's own data


def prepare(args: argparse.Namespace):
    """Prepare what the arguments name; print what was written and the command that labels it."""
    started = time.monotonic()
    if getattr(args, "from_folder", None) or getattr(args, "from_csv", None):
        prepared, name = _prepare_own(args), Path(args.from_folder or args.from_csv).name
    else:
        from labelloop.datasets import PREPARERS

        kwargs: dict[str, Any] = {"limit": args.limit, "seed": args.seed}
        if args.source:
            kwargs["source"] = Path(args.source)
        prepared, name = PREPARERS[args.dataset](Path(args.out), **kwargs), args.dataset
    counts = getattr(prepared, "class_counts", None) or {}
    per_class = f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts and len(counts) <= 12 else ""
    truth = (
        f"{prepared.truth} (read only by simulated annotators and evaluation)" if prepared.truth
        else "none (the labels are not known: people give them, --workforce people)"
    )
    print(
        f"{name}: {prepared.count} items, {len(prepared.class_names)} classes{per_class} "
        f"in {time.monotonic() - started:.1f}s\n"
        f"  manifest:        {prepared.manifest}\n"
        f"  label config:    {prepared.label_config}\n"
        f"  true labels:     {truth}"
    )
    for note in getattr(prepared, "notes", []):
        print(f"  note: {note}")
    return prepared


def _prepare_own(args: argparse.Namespace):
    from labelloop.datasets.own import prepare_from_csv, prepare_from_folder

    classes = args.classes.split(",") if args.classes else None
    if args.from_folder:
        prepared = prepare_from_folder(args.from_folder, args.out, classes=classes, limit=args.limit, seed=args.seed)
    else:
        prepared = prepare_from_csv(args.from_csv, args.out, text_column=args.text_column,
                                    label_column=args.label_column, classes=classes, limit=args.limit, seed=args.seed)
    return prepared


def next_command(prepared, out: Path) -> str:
    """The `labelloop run` that labels what was prepared."""
    argv = ["labelloop", "run", "--manifest", str(prepared.manifest), "--label-config", str(prepared.label_config),
            "--task-type", prepared.task_type, "--label-attribute", LABEL_ATTRIBUTE,
            "--output", f"runs/{out.resolve().name}"]
    argv += ["--truth", str(prepared.truth)] if prepared.truth else ["--workforce", "people"]
    return shlex.join(argv)


def cmd_prepare(args: argparse.Namespace) -> int:
    from labelloop.datasets.own import PrepareError

    if bool(args.dataset) == bool(args.from_folder or args.from_csv):
        print("labelloop: prepare needs one of: a dataset name (" + ", ".join(DATASETS)
              + "), --from-folder DIR or --from-csv FILE", file=sys.stderr)
        return 2
    if args.dataset and (args.classes or args.text_column != "text" or args.label_column):
        print("labelloop: --classes, --text-column and --label-column are for --from-folder / --from-csv",
              file=sys.stderr)
        return 2
    try:
        prepared = prepare(args)
    except (PrepareError, OSError, ValueError) as exc:  # bad input (a missing source, --out a file): one line, no trace
        print(f"labelloop: {exc}", file=sys.stderr)
        return 2
    if args.from_folder or args.from_csv:
        who = "simulated annotators answer from the true labels" if prepared.truth else "you label on a local worker page"
        print(f"next ({who}):\n  {next_command(prepared, Path(args.out))}")
    return 0


def positive_int(text: str) -> int:
    """argparse type: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def add_prepare_command(subparsers: Any) -> argparse.ArgumentParser:
    prep = subparsers.add_parser(
        "prepare",
        help="make an input manifest (+ label config, + hidden true labels) from a public dataset or your own data",
        description="Write OUT/manifest.jsonl (the items, unlabeled), OUT/labels.json (the classes) and, when the "
        "labels are known, OUT/truth.jsonl (boxes, masks: OUT/truth.manifest, a Ground Truth output manifest), read only by simulated annotators and the evaluation.\n\n"
        "  labelloop prepare digits --out data/digits\n"
        "  labelloop prepare --from-folder pets/ --out data/pets          (pets/cat/*.jpg, pets/dog/*.jpg, ...)\n"
        "  labelloop prepare --from-folder photos/ --classes cat,dog --out data/photos   (unlabeled images)\n"
        "  labelloop prepare --from-csv tickets.csv --out data/tickets   (columns: text[,label])",
    )
    prep.add_argument("dataset", nargs="?", choices=DATASETS, metavar="DATASET",
                      help=f"a public dataset: {', '.join(DATASETS)}")
    prep.add_argument("--from-folder", metavar="DIR",
                      help="your images: one sub-folder per class (the labels become the true labels), "
                      "or images only (unlabeled: give --classes)")
    prep.add_argument("--from-csv", metavar="FILE",
                      help="your texts: a CSV file with a header row, a text column and optionally a label column")
    prep.add_argument("--text-column", default="text", help="--from-csv: the column holding the text")
    prep.add_argument("--label-column",
                      help="--from-csv: the column holding the labels (default: 'label' if there is one; none: unlabeled)")
    prep.add_argument("--classes", help="the class names, comma-separated, in class-index order "
                      "(needed for unlabeled data; with labels, their order)")
    prep.add_argument("--out", required=True, help="folder to write manifest.jsonl, labels.json, the true labels (and images/)")
    prep.add_argument("--limit", type=positive_int, help="a seeded random subset of this many items (default: all; "
                      "fashion-mnist-detection, -segmentation: this many canvases, 5,000)")
    prep.add_argument("--seed", type=int, default=0, help="seed of the --limit subset")
    prep.add_argument("--source",
                      help="public datasets: where the raw dataset is (fashion-mnist and its -detection, -segmentation: the IDX folder; "
                      "spamassassin: "
                      "the package's data folder)")
    prep.set_defaults(func=cmd_prepare)
    return prep
