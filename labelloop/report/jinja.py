"""The report's Jinja2 environment: templates in this package's `templates/`, every value
escaped unless it is Markup a template made, and the number formats the page uses."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def money(value: float) -> str:
    """Dollars as a price reads: $0.08, $0.125."""
    return f"${value:.2f}" if round(value, 2) == value else f"${value:g}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("labelloop.report", "templates"),
        autoescape=True,  # item text and file names come from the user's data
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=pct, money=money, count=lambda n: f"{n:,}")
    return env
