"""The one error the worker page answers with."""

from __future__ import annotations


class PageError(Exception):
    """A request the worker page refuses: answered with `status` and a JSON message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
