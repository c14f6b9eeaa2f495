"""Fixtures of the fault suite (helpers are in fault_helpers.py: a unique module name)."""

import pytest

from fault_helpers import record


@pytest.fixture()
def recorder(request):
    """recorder(kind, count, output_dir=..., attribute=...): note what a test tried, for bench/fault_suite.py."""
    return lambda kind, count, **kw: record(kind, request.node.name, count, **kw)
