"""Stand-in `ssh`: checks the options the bot passes, then runs the remote command locally.

A host named `unreachable` fails like OpenSSH does (exit 255, message on stderr).
FAKE_SSH_LOG: a file each invocation's arguments are appended to.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    argv = sys.argv[1:]
    if log := os.environ.get("FAKE_SSH_LOG"):
        with open(log, "a") as f:
            f.write(" ".join(argv) + "\n")
    options = []
    while argv and argv[0] == "-o":
        options.append(argv[1])
        argv = argv[2:]
    if not argv or argv[0].startswith("-"):
        sys.stderr.write("usage: ssh [-o option] destination [command]\n")
        return 255
    host, command = argv[0], argv[1:]
    if "BatchMode=yes" not in options:
        sys.stderr.write("stand-in: refusing an interactive ssh (BatchMode=yes missing)\n")
        return 255
    if host.split("@")[-1] == "unreachable":
        sys.stderr.write(f"ssh: connect to host {host.split('@')[-1]} port 22: Connection refused\n")
        return 255
    os.execvp(command[0], command)
    return 127


if __name__ == "__main__":
    sys.exit(main())
