"""GPU readings from `nvidia-smi --query-*` CSV, run locally or over SSH.

nvidia-smi is on every machine with the driver, so this works where NVML bindings or a
Prometheus server are not available.  Fields a card does not support come back as
`[N/A]` or `[Not Supported]`; those become None rather than zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import replace
from datetime import UTC, datetime

from infra.errors import BackendUnavailable
from infra.gpu.model import GpuProcess, GpuReading, GpuSample

GPU_FIELDS = ("index", "uuid", "name", "utilization.gpu", "memory.used", "memory.total",
              "temperature.gpu", "power.draw", "power.limit")
APP_FIELDS = ("gpu_uuid", "pid", "used_memory", "process_name")
FORMAT = "--format=csv,noheader,nounits"
MAX_OUTPUT = 1 << 20  # a real answer is a few hundred bytes per GPU


def gpu_query_args() -> list[str]:
    return ["--query-gpu=" + ",".join(GPU_FIELDS), FORMAT]


def app_query_args() -> list[str]:
    return ["--query-compute-apps=" + ",".join(APP_FIELDS), FORMAT]


def _missing(value: str) -> bool:
    v = value.strip()
    return not v or v.startswith("[") or v.upper() in ("N/A", "NOT SUPPORTED")


def _num(value: str) -> float | None:
    if _missing(value):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _int(value: str) -> int | None:
    n = _num(value)
    return int(n) if n is not None else None


def parse_apps(text: str) -> dict[str, list[GpuProcess]]:
    """`--query-compute-apps` rows grouped by GPU UUID; the process name is last so commas in it survive."""
    out: dict[str, list[GpuProcess]] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",", len(APP_FIELDS) - 1)]
        if len(parts) != len(APP_FIELDS):
            continue  # "No running processes found" and other prose
        uuid, pid, mem, name = parts
        out.setdefault(uuid, []).append(
            GpuProcess(pid=_int(pid), name="?" if _missing(name) else os.path.basename(name) or name,
                       memory_mib=_num(mem)))
    return out


def parse_gpus(text: str, apps: dict[str, list[GpuProcess]] | None = None) -> list[GpuSample]:
    """`--query-gpu` rows in GPU_FIELDS order; a line that is not a GPU row is an error, not skipped."""
    gpus: list[GpuSample] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(GPU_FIELDS):
            raise BackendUnavailable(f"nvidia-smi answered something I can't read: {line.strip()[:200]!r}")
        index = _int(parts[0])
        if index is None:
            raise BackendUnavailable(f"nvidia-smi gave a GPU without an index: {line.strip()[:200]!r}")
        uuid = parts[1]
        procs = sorted((apps or {}).get(uuid, []), key=lambda p: -(p.memory_mib or 0))
        gpus.append(GpuSample(
            index=index, uuid=uuid, name=parts[2] if not _missing(parts[2]) else f"GPU {index}",
            util_pct=_num(parts[3]), memory_used_mib=_num(parts[4]), memory_total_mib=_num(parts[5]),
            temperature_c=_num(parts[6]), power_w=_num(parts[7]), power_limit_w=_num(parts[8]),
            processes=procs))
    return gpus


def _first_line(data: bytes) -> str:
    for line in data.decode(errors="replace").splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


class NvidiaSmiSource:
    """Runs nvidia-smi on this machine, or on `ssh` (user@host) with BatchMode SSH."""

    kind = "nvidia-smi"

    def __init__(self, host: str, ssh: str | None = None, timeout_s: float = 10.0,
                 executable: str = "nvidia-smi") -> None:
        if ssh is not None and (not ssh.strip() or ssh.startswith("-") or any(c.isspace() for c in ssh)):
            raise ValueError(f"gpu_hosts.{host}.ssh must be a plain [user@]host, not {ssh!r}")
        self.host = host
        self.ssh = ssh
        self.timeout_s = timeout_s
        self.executable = executable

    @property
    def where(self) -> str:
        return f"{self.host} (over SSH to {self.ssh})" if self.ssh else f"{self.host} (local)"

    def argv(self, args: list[str]) -> list[str]:
        if self.ssh:
            connect = max(1, int(self.timeout_s))
            return ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect}", self.ssh,
                    self.executable, *args]
        return [self.executable, *args]

    async def _run(self, args: list[str]) -> str:
        argv = self.argv(args)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except FileNotFoundError as exc:
            what = "ssh" if self.ssh else self.executable
            raise BackendUnavailable(f"{what} is not installed on the bot's machine, so I can't read "
                                     f"the GPUs of {self.host}.") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError as exc:
            _kill(proc)
            await proc.wait()
            raise BackendUnavailable(f"nvidia-smi on {self.where} did not answer within "
                                     f"{self.timeout_s:g}s.") from exc
        if proc.returncode != 0:
            why = _first_line(err) or _first_line(out) or "no message"
            if self.ssh and proc.returncode == 255:
                raise BackendUnavailable(f"I could not reach {self.ssh} over SSH: {why}")
            raise BackendUnavailable(f"nvidia-smi on {self.where} failed (exit {proc.returncode}): {why}")
        return out[:MAX_OUTPUT].decode(errors="replace")

    async def read(self) -> GpuReading:
        gpu_res, app_res = await asyncio.gather(self._run(gpu_query_args()), self._run(app_query_args()),
                                                return_exceptions=True)
        if isinstance(gpu_res, BaseException):
            raise gpu_res
        notes: list[str] = []
        apps: dict[str, list[GpuProcess]] | None = None
        if isinstance(app_res, BaseException):
            notes.append(f"processes unavailable: {app_res}")
        else:
            apps = parse_apps(app_res)
        gpus = parse_gpus(gpu_res, apps)
        if apps is None:
            gpus = [replace(g, processes=None) for g in gpus]
        if not gpus:
            raise BackendUnavailable(f"nvidia-smi on {self.where} lists no GPUs.")
        return GpuReading(self.host, self.kind, gpus, datetime.now(UTC), notes)

    async def ping(self) -> str:
        gpus = parse_gpus(await self._run(gpu_query_args()))
        return f"nvidia-smi: {len(gpus)} GPU(s)"


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill the process group we started (ssh and whatever it spawned), not just the leader."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
