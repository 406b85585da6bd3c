"""Errors meant for the person in chat, shown as they are (never a traceback)."""

from __future__ import annotations


class CommandError(Exception):
    """A failure whose message is safe and useful to show to the user."""


class NotConfigured(CommandError):
    """A backend the inventory gives no connection details for."""


class BackendUnavailable(CommandError):
    """A configured backend that is down, slow or refusing us."""


class CannotRun(CommandError):
    """A preview found that the request cannot succeed as asked (with the reason and the fix).

    The engine refuses such a request before anyone confirms or approves it.
    """
