"""The last hour of GPU load as a PNG (utilisation and memory per GPU).

matplotlib is imported here only, on first use, through the Agg canvas and the object
API (no pyplot, no global backend switch), so rendering is thread-safe and start-up of
the rest of the bot does not pay for it.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from infra.gpu.model import History, Series


def render_png(history: History, title: str) -> bytes:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter, date2num
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax_util, ax_mem = fig.subplots(2, 1, sharex=True)
    start = float(date2num(datetime.fromtimestamp(history.start, UTC)))
    end = float(date2num(datetime.fromtimestamp(history.end, UTC)))

    def plot(ax: Axes, series: list[Series], ylabel: str) -> None:
        for s in series:
            if s.points:
                ax.plot([float(date2num(datetime.fromtimestamp(t, UTC))) for t, _ in s.points],
                        [v for _, v in s.points],
                        label=s.label, linewidth=1.5)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 105)
        ax.set_xlim(start, end)
        ax.grid(True, alpha=0.3)
        if any(s.points for s in series):
            ax.legend(loc="upper left", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")

    plot(ax_util, history.util, "utilisation %")
    plot(ax_mem, history.memory_pct, "memory used %")
    ax_mem.xaxis.set_major_formatter(DateFormatter("%H:%M"))
    ax_mem.set_xlabel("UTC")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
