"""The run's totals and per-class counts, as the report's cards and class table show them."""

from __future__ import annotations

from dataclasses import dataclass

from labelloop.report.run import RunData, number

DEFAULT_PRICE_PER_LABEL = 0.08  # dollars per label per worker, as `labelloop run` assumes


@dataclass
class Totals:
    items: int
    human: int
    auto: int
    unlabeled: int
    human_by_job: int  # human labels this job paid for (not those the input already had)
    price: float
    workers: int
    adjusted: int = 0  # of human_by_job, the items shown the model's guess (adjusted, not drawn blind)
    adjusted_price: float | None = None  # per adjusted label per worker; None: `price`

    @property
    def cost(self) -> float:
        adjusted_price = self.price if self.adjusted_price is None else self.adjusted_price
        return round(((self.human_by_job - self.adjusted) * self.price + self.adjusted * adjusted_price) * self.workers, 2)

    @property
    def priced_apart(self) -> bool:
        """Adjustments cost other than blind labels in this run."""
        return self.adjusted_price is not None and self.adjusted_price != self.price


def _adjusted(data: RunData) -> int:
    if data.summary and isinstance(data.summary.get("HumanAdjusted"), int):
        return data.summary["HumanAdjusted"]
    return int((data.metrics[-1].get("HumanAdjusted") or 0) if data.metrics else 0)


def totals(data: RunData, price_per_label: float | None = None, price_per_adjusted_label: float | None = None) -> Totals:
    labels = data.labels
    if data.summary and isinstance(data.summary.get("HumanLabeledByThisJob"), int):
        by_job = data.summary["HumanLabeledByThisJob"]
    elif data.items_from is not None and data.items_from.name.startswith("ledger-"):
        by_job = labels.human_by_job  # ledgers know each label's iteration (0: came with the input)
    elif data.metrics:
        by_job = int(data.metrics[-1].get("HumanLabeled") or 0)
    else:
        by_job = labels.human_by_job
    if price_per_label is None:
        price = number(data.settings.get("PricePerLabel"))
        price_per_label = DEFAULT_PRICE_PER_LABEL if price is None else price
    workers = data.settings.get("WorkersPerObject")
    workers = workers if isinstance(workers, int) and not isinstance(workers, bool) and workers > 0 else 1
    if price_per_adjusted_label is None:
        price_per_adjusted_label = number(data.settings.get("PricePerAdjustedLabel"))
    return Totals(labels.total, labels.human, labels.auto, labels.total - labels.human - labels.auto, by_job,
                  float(price_per_label), workers, _adjusted(data),
                  None if price_per_adjusted_label is None else float(price_per_adjusted_label))


def class_counts(data: RunData) -> list[tuple[str, int, int]]:
    """(class name, human labels, auto-labels) for each class, in class-index order."""
    human = {cls: count for (cls, is_human), count in data.labels.per_class.items() if is_human}
    auto = {cls: count for (cls, is_human), count in data.labels.per_class.items() if not is_human}
    n = max(len(data.classes), max([*human, *auto], default=-1) + 1)
    names = data.classes + [str(i) for i in range(len(data.classes), n)]
    return [(names[i], human.get(i, 0), auto.get(i, 0)) for i in range(n)]
