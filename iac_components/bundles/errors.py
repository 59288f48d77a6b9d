"""The one-line error of a bundle run: a command a person typed, so a message that says what to do, not a
traceback."""

from __future__ import annotations

__all__ = ["fail"]


def fail(message: str) -> SystemExit:
    """``raise fail("...")``: exit with ``error: <message>``."""
    return SystemExit(f"error: {message}")
