"""The neutral GPU reading every source produces, so the command never knows where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class GpuProcess:
    pid: int | None
    name: str
    memory_mib: float | None


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one moment; a field the source could not read is None, never a guess."""

    index: int
    name: str
    uuid: str = ""
    util_pct: float | None = None
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    # None: the source cannot list processes (Prometheus); []: it can, and there are none.
    processes: list[GpuProcess] | None = field(default_factory=list)

    @property
    def memory_pct(self) -> float | None:
        if self.memory_used_mib is None or not self.memory_total_mib:
            return None
        return 100.0 * self.memory_used_mib / self.memory_total_mib


@dataclass(frozen=True)
class GpuReading:
    """What a source read from a host: its GPUs, when, and how."""

    host: str
    source: str
    gpus: list[GpuSample]
    at: datetime
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Series:
    """One line of a chart: (unix time, value) points for a GPU."""

    label: str
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class History:
    """The last stretch of utilisation and memory use per GPU, for the chart."""

    util: list[Series]
    memory_pct: list[Series]
    start: float
    end: float


class GpuSource(Protocol):
    """What the `gpu` command needs from a source; `history` only where the source keeps one."""

    kind: str

    async def read(self) -> GpuReading: ...

    async def ping(self) -> str: ...
