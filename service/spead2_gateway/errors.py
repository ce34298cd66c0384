"""Errors that stop the daemon from starting."""

from __future__ import annotations

__all__ = ["StartupError"]


class StartupError(RuntimeError):
    """The daemon cannot start (port taken, missing token, unreadable TLS files, ...)."""
