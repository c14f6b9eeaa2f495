"""CI: the README's first command's job (the digits demo) must end as the README says it does.

Usage: python .ci/check_demo.py RUN_FOLDER. Exits non-zero with one line per broken expectation.
"""

import json
import sys
from pathlib import Path


def main(run: Path) -> int:
    summary = json.loads((run / "output" / "summary.json").read_text())
    evaluation = json.loads((run / "output" / "evaluation.json").read_text())
    lines = (run / "output" / "output.manifest").read_text().splitlines()
    settings = json.loads((run / "config" / "settings.json").read_text())
    target = float(settings.get("TargetAccuracy", 0.95))
    problems = []
    if summary["StopReason"] != "all-labeled" or summary["Unlabeled"] != 0:
        problems.append(f"stopped {summary['StopReason']!r} with {summary['Unlabeled']} items unlabeled")
    if summary["HumanLabeled"] + summary["AutoLabeled"] != summary["Total"] or len(lines) != summary["Total"]:
        problems.append(f"{summary['HumanLabeled']} human + {summary['AutoLabeled']} auto labels, "
                        f"{len(lines)} output lines, for {summary['Total']} items")
    if summary["AutoLabeled"] == 0:
        problems.append("nothing was auto-labeled")
    elif evaluation["auto_accuracy"] < target:
        problems.append(f"auto-labels {evaluation['auto_accuracy']:.2%} right, below the {target:.0%} target")
    if evaluation["human_accuracy"] != 1.0:
        problems.append(f"simulated people were {evaluation['human_accuracy']:.2%} right, expected 100 %")
    for problem in problems:
        print(f"demo check: {problem}", file=sys.stderr)
    if not problems:
        print(f"demo check: {summary['Total']} items, {summary['HumanLabeled']} human labels, "
              f"{summary['AutoLabeled']} auto-labels {evaluation['auto_accuracy']:.2%} right, "
              f"{summary['Iterations']} iterations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
