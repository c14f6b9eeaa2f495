"""The cost curve: human labels bought against items labeled, iteration by iteration, beside the
diagonal of labeling everything by hand. Drawn as inline SVG (coordinates here, shapes in the
template), so it scales with the page and needs no image."""

from __future__ import annotations

from typing import Any

from labelloop.report.run import RunData

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 62, 20, 16, 44


def _ticks(top: int) -> list[int]:
    """About five round tick values from 0 to `top`."""
    if top <= 0:
        return [0]
    raw = top / 5
    step = next(s * 10 ** e for e in range(len(str(top)) + 1) for s in (1, 2, 5) if s * 10 ** e >= raw)
    return list(range(0, top + 1, step))


def cost_curve(data: RunData, price: float, workers: int) -> dict[str, Any] | None:
    """What the template draws: the run's points, the all-human line, ticks; None without iterations."""
    rows = [m for m in data.metrics if isinstance(m.get("HumanLabeled"), int) and isinstance(m.get("AutoLabeled"), int)]
    total = (data.summary or {}).get("Total") or data.labels.total
    if not rows or not isinstance(total, int) or total <= 0:
        return None
    points = [(0, 0)] + [(m["HumanLabeled"] + m["AutoLabeled"], m["HumanLabeled"]) for m in rows]
    span_x, span_y = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(labeled: float, human: float) -> tuple[float, float]:
        return round(LEFT + span_x * labeled / total, 1), round(TOP + span_y * (1 - human / total), 1)

    last_labeled, last_human = points[-1]
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "bottom": HEIGHT - BOTTOM, "right": WIDTH - RIGHT, "top": TOP,
        "run": " ".join(f"{x},{y}" for x, y in (xy(*p) for p in points)),
        "dots": [(*xy(*p), f"it. {m['Iteration']}: {p[1]:,} human labels for {p[0]:,} items")
                 for p, m in zip(points[1:], rows)],
        "all_human": " ".join(f"{x},{y}" for x, y in (xy(0, 0), xy(total, total))),
        "x_ticks": [(xy(t, 0)[0], f"{t:,}") for t in _ticks(total)],
        "y_ticks": [(xy(0, t)[1], f"{t:,}") for t in _ticks(total)],
        "saved": last_labeled - last_human,
        "saved_cost": round((last_labeled - last_human) * price * workers, 2),
        "labeled": last_labeled,
        "human": last_human,
    }
