"""`labelloop report OUTPUT_DIR`: write the page and its plots into the run's folder."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from labelloop import layout
from labelloop.report.plots import PLOTS, run_plots
from labelloop.report.render import render_html
from labelloop.report.run import load_run

REPORT_NAME = "report.html"


def write_report(output_dir: Path, price_per_label: float | None = None, examples: int = 24,
                 price_per_adjusted_label: float | None = None) -> Path:
    """Write OUTPUT_DIR/report/report.html (self-contained) and its plots as PNGs; returns the HTML path.

    price_per_label: dollars per label per worker; default: the run's PricePerLabel setting, else $0.08.
    price_per_adjusted_label: the same for an item shown the model's guess; default: the run's
    PricePerAdjustedLabel setting, else price_per_label.
    """
    root = Path(output_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    data = load_run(root, examples)
    plots = run_plots(data)
    out = Path(layout.report_dir(str(root)))
    out.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        if name in plots:
            (out / name).write_bytes(plots[name])
        else:
            (out / name).unlink(missing_ok=True)  # a plot of an earlier report no longer applies
    path = out / REPORT_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_html(data, plots, price_per_label, price_per_adjusted_label), encoding="utf-8")
    tmp.replace(path)
    return path


def cmd_report(args: argparse.Namespace) -> int:
    for flag, price in (("--price-per-label", args.price_per_label), ("--price-per-adjusted-label", args.price_per_adjusted_label)):
        if price is not None and (not math.isfinite(price) or price < 0):
            print(f"error: {flag} must be a non-negative number", file=sys.stderr)
            return 2
    try:
        path = write_report(Path(args.output_dir), price_per_label=args.price_per_label, examples=args.examples,
                            price_per_adjusted_label=args.price_per_adjusted_label)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


def add_report_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `labelloop report OUTPUT_DIR` to the CLI's subparsers."""
    report = subparsers.add_parser(
        "report",
        help="write an HTML report of a labeling run (finished or still going)",
        description="Write OUTPUT_DIR/report/report.html: a self-contained page with the per-iteration table, "
        "plots of labels, threshold and validation accuracy, the class distribution, the cost so far against "
        "labeling everything by hand, where the time went, examples of auto-labeled and human-labeled items and, "
        "when the run had true labels, the accuracy (boxes: mean IoU) per class, the confusion matrix and the wrong "
        "auto-labels marked. Works on a run that is still going.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    report.add_argument("output_dir", metavar="OUTPUT_DIR", help="the run's --output folder")
    report.add_argument("--price-per-label", type=float, default=None,
                        help="dollars per label per worker (default: the run's --price-per-label, else 0.08)")
    report.add_argument("--price-per-adjusted-label", type=float, default=None,
                        help="dollars per label per worker of an item shown the model's guess (default: the run's "
                             "--price-per-adjusted-label, else the price per label)")
    report.add_argument("--examples", type=int, default=24, help="examples shown per group")
    report.set_defaults(func=cmd_report)
    return report
