"""Where the console keeps its own files (history, saved attachments, the default SQLite log).

A console must never break on its own files: a read-only home (a hardened container,
ProtectSystem=strict, a shared account) only moves them.  The first writable folder of
CHATOPS_STATE_DIR, the user's state folder (XDG_STATE_HOME) and a per-user folder in the
temporary directory is used; with none, history stays in memory and the console says so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def writable_folder(folder: Path) -> str | None:
    """None when files can be created in `folder` (made if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        return f"{folder}: {exc.strerror or exc}"
    return None


def _private(folder: Path) -> str | None:
    """A shared temporary folder must be this user's own and closed to others (logs land there)."""
    try:
        if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
            return f"{folder}: owned by another user"
        os.chmod(folder, 0o700)
    except OSError as exc:
        return f"{folder}: {exc.strerror or exc}"
    return None


def _candidates() -> list[tuple[Path, bool]]:
    """Folders to try, each with whether it lies in a folder other users share (the temporary one)."""
    from platformdirs import user_state_dir

    out = [(Path(os.environ["CHATOPS_STATE_DIR"]), False)] if os.environ.get("CHATOPS_STATE_DIR") else []
    with contextlib.suppress(Exception):  # no home at all (HOME unset and no passwd entry)
        out.append((Path(user_state_dir("chatops")), False))
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    with contextlib.suppress(OSError):  # raises when no temporary folder is usable either
        out.append((Path(tempfile.gettempdir()) / f"chatops-{uid}", True))
    return out


@dataclass
class LocalState:
    folder: Path | None
    # Folders tried before `folder` and why they could not be used.
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def find(cls) -> LocalState:
        skipped: list[str] = []
        for folder, shared in _candidates():
            why = writable_folder(folder)
            if why is None and shared:
                why = _private(folder)
            if why is None:
                return cls(folder, skipped)
            skipped.append(why)
        return cls(None, skipped)

    def note(self) -> str | None:
        """One line for the console's start when the usual folder could not be used."""
        if self.folder is None:
            return ("! No writable folder for console history or attachments ("
                    + "; ".join(self.skipped) + "): history is kept in memory for this session. "
                    "Set CHATOPS_STATE_DIR to a writable folder to keep it.")
        if self.skipped:
            return f"! Console files are in {self.folder} ({'; '.join(self.skipped)})."
        return None

    def history(self) -> tuple[Any, str | None]:
        """prompt_toolkit history: a file when one can be appended to, else in memory (with why)."""
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        if self.folder is None:
            return InMemoryHistory(), None  # note() said so already
        path = self.folder / "console_history"
        try:
            with path.open("a"):
                pass
        except OSError as exc:
            return InMemoryHistory(), (f"! {path} cannot be written ({exc.strerror or exc}); history is "
                                       "kept in memory for this session.")
        return FileHistory(str(path)), None

    def attachments(self) -> Path | None:
        if self.folder is None:
            return None
        folder = self.folder / "attachments"
        return folder if writable_folder(folder) is None else None

    def sqlite_url(self) -> tuple[str, str | None]:
        """The embedded audit log: the data folder when writable, else beside the console's files."""
        from platformdirs import user_data_dir

        usual = Path(user_data_dir("chatops"))
        why = writable_folder(usual)
        if why is None:
            return f"sqlite:///{usual / 'audit.sqlite3'}", None
        if self.folder is None:
            raise OSError(f"no writable folder for the audit log ({why}; {'; '.join(self.skipped)})")
        path = self.folder / "audit.sqlite3"
        return f"sqlite:///{path}", (f"! The audit log is {path} because {why}; set DATABASE_URL "
                                     "(or XDG_DATA_HOME) to keep it elsewhere.")
