"""The text page NVIDIA's dcgm-exporter serves, for the GPUs a test describes.

Same families, HELP texts, label set and value formatting as the exporter's default
counters (dcgm-exporter 3.x/4.x run in Docker: no pod labels).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeGpu:
    gpu: int
    uuid: str
    model: str = "NVIDIA GeForce RTX 3090"
    util: float = 0
    fb_used: float = 0
    fb_free: float = 24576
    temp: float = 40
    power: float = 30.0
    pci_bus_id: str = ""


# (name, type, help) in the exporter's order
FAMILIES = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %)."),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter",
     "Total number of NVLink bandwidth counters for all lanes."),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active."),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge",
     "Ratio of cycles the device memory interface is active sending or receiving data."),
)


def _value(name: str, g: FakeGpu) -> str:
    values = {
        "DCGM_FI_DEV_SM_CLOCK": "1695" if g.util else "210",
        "DCGM_FI_DEV_MEM_CLOCK": "9751" if g.util else "405",
        "DCGM_FI_DEV_MEMORY_TEMP": "0",
        "DCGM_FI_DEV_GPU_TEMP": f"{g.temp:g}",
        "DCGM_FI_DEV_POWER_USAGE": f"{g.power:.6f}",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "2783942179",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "0",
        "DCGM_FI_DEV_GPU_UTIL": f"{g.util:g}",
        "DCGM_FI_DEV_MEM_COPY_UTIL": f"{g.util / 2:.0f}",
        "DCGM_FI_DEV_ENC_UTIL": "0",
        "DCGM_FI_DEV_DEC_UTIL": "0",
        "DCGM_FI_DEV_XID_ERRORS": "0",
        "DCGM_FI_DEV_FB_FREE": f"{g.fb_free:g}",
        "DCGM_FI_DEV_FB_USED": f"{g.fb_used:g}",
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": "0",
        "DCGM_FI_DEV_VGPU_LICENSE_STATUS": "0",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": f"{g.util / 100:.6f}",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": f"{g.util / 250:.6f}",
        "DCGM_FI_PROF_DRAM_ACTIVE": f"{g.util / 180:.6f}",
    }
    return values[name]


def render_dcgm(gpus: list[FakeGpu], hostname: str = "phoenix", driver: str = "550.120") -> str:
    lines = []
    for name, kind, help_text in FAMILIES:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for g in gpus:
            bus = g.pci_bus_id or f"00000000:{g.gpu + 1:02X}:00.0"
            labels = (f'gpu="{g.gpu}",UUID="{g.uuid}",pci_bus_id="{bus}",device="nvidia{g.gpu}",'
                      f'modelName="{g.model}",Hostname="{hostname}",DCGM_FI_DRIVER_VERSION="{driver}"')
            lines.append(f"{name}{{{labels}}} {_value(name, g)}")
    return "\n".join(lines) + "\n"
