"""Stand-in `nvidia-smi`: replays recorded outputs from tests/data/nvidia-smi.

FAKE_NVSMI_DATA: the recordings folder; FAKE_NVSMI_SCENARIO: which one (or `hang`);
FAKE_NVSMI_LOG: a file each invocation's arguments are appended to.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main() -> int:
    data = Path(os.environ["FAKE_NVSMI_DATA"])
    scenario = os.environ.get("FAKE_NVSMI_SCENARIO", "phoenix")
    args = " ".join(sys.argv[1:])
    if log := os.environ.get("FAKE_NVSMI_LOG"):
        with open(log, "a") as f:
            f.write(args + "\n")
    if scenario == "hang":
        time.sleep(60)
        return 0
    exit_file = data / f"{scenario}.exit"
    if exit_file.exists():
        sys.stdout.write((data / f"{scenario}.stdout").read_text())
        return int(exit_file.read_text())
    gpu_query, app_query = (data / "QUERIES").read_text().splitlines()[:2]
    if args == gpu_query:
        kind = "gpus"
    elif args == app_query:
        kind = "apps"
    else:
        sys.stdout.write("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n\n")
        return 2
    path = data / f"{scenario}.{kind}.csv"
    fail = data / f"{scenario}.{kind}.exit"
    if fail.exists():
        sys.stdout.write("Unable to determine the device handle for GPU0000:01:00.0: Unknown Error\n")
        return int(fail.read_text())
    sys.stdout.write(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
