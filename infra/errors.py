"""Errors meant for the person in chat, shown as they are (never a traceback)."""

from __future__ import annotations


class CommandError(Exception):
    """A failure whose message is safe and useful to show to the user."""


class NotConfigured(CommandError):
    """A backend the inventory gives no connection details for."""


class BackendUnavailable(CommandError):
    """A configured backend that is down, slow or refusing us."""


class CannotSucceed(CommandError):
    """A request that cannot work as asked (no such snapshot, nothing to roll back to, a name the
    backend refuses), found before anything changed.

    A preview raises it to have the engine refuse the request with this reason before anyone
    confirms or approves it; a handler raising it has changed nothing.
    """
