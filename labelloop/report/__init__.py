"""A run's report: one self-contained HTML page about a labeling run's output folder.

`labelloop report OUTPUT_DIR` reads what the loop wrote (see `labelloop.layout`): the settings,
each iteration's `metrics.json`, the labels (the output manifest of a finished run, else the
newest ledger of a run still going), the human batch waiting for people, `output/summary.json`
and `output/evaluation.json` when they exist. It writes `OUTPUT_DIR/report/report.html` with
every image embedded (base64 PNGs), and the plots again as PNG files beside it. A folder with
nothing in it yet gets a page that says so.

Modules: `run` reads the folder, `numbers` counts, `plots` draws, `curves` lays out the cost
curve, `accuracy` judges against the true labels, `timing` reads where the time went, `examples`
picks and draws example items, `render` fills the Jinja2 templates in `templates/`, `command` is
the CLI.
"""

from labelloop.report.command import REPORT_NAME, add_report_command, cmd_report, write_report
from labelloop.report.examples import example_groups, example_view
from labelloop.report.numbers import DEFAULT_PRICE_PER_LABEL, Totals, class_counts, totals
from labelloop.report.plots import PLOTS, plot_calibration, plot_classes, plot_labels
from labelloop.report.render import render_html
from labelloop.report.run import Item, Labels, RunData, load_run, newest_ledger

__all__ = [
    "DEFAULT_PRICE_PER_LABEL", "PLOTS", "REPORT_NAME", "Item", "Labels", "RunData", "Totals",
    "add_report_command", "class_counts", "cmd_report", "example_groups", "example_view", "load_run",
    "newest_ledger", "plot_calibration", "plot_classes", "plot_labels", "render_html", "totals", "write_report",
]
