"""The one report module of the bench (bench/harness/report.py) and of k6
(k6/report.py): tables as Markdown or plain text, charts drawn by matplotlib
and saved as reproducible SVG (no date, fixed ids, text kept as text).

Both callers load it by path (it is not a package); it needs matplotlib,
pinned in pyproject.toml's group `emulator` (uv.lock), synced into .venv,
the environment both reports run in.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

matplotlib.rcParams.update({
    "svg.fonttype": "none",  # <text>, not paths: small files, searchable, selectable
    "svg.hashsalt": "sqs-lambda-pipeline",  # fixed element ids: an unchanged chart is unchanged bytes
    "font.family": ["DejaVu Sans"],  # ships with matplotlib, so every machine draws the same
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
})

DPI = 100


# ---------------------------------------------------------------- tables


def md_table(rows: list[list[str]], align: str | None = None, escape_pipes: bool = False) -> str:
    """rows[0] is the header; align has one letter per column, l or r (default: all l)."""
    width = len(rows[0])
    align = align or "l" * width

    def cell(c) -> str:
        c = str(c)
        return c.replace("|", "\\|") if escape_pipes else c

    out = ["| " + " | ".join(cell(c) for c in rows[0]) + " |",
           "|" + "".join("---:|" if a == "r" else "---|" for a in align)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows[1:]]
    return "\n".join(out)


def text_table(rows: list[list[str]], indent: str = "  ") -> str:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append(indent + " | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            lines.append(indent + "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------- charts


def figure(width_px: int, height_px: int) -> Figure:
    return Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)


def save_svg(fig: Figure, path: Path) -> Path:
    path = Path(path)
    fig.savefig(path, format="svg", metadata={"Date": None, "Creator": None})
    return path


def hbars(ax, title: str, names: list[str], values: list[float | None], colors: list[str],
          labels: list[str] | None = None) -> None:
    """One horizontal bar per name, top to bottom, its value (or labels[i]) beside it; n/a for None."""
    ys = list(range(len(names)))[::-1]
    known = [v for v in values if v is not None]
    top = max(known) if known and max(known) > 0 else 1.0
    ax.barh(ys, [v or 0 for v in values], color=colors, height=0.7)
    ax.set_yticks(ys, names)
    ax.set_xlim(0, top * 1.45)  # room for the labels
    ax.set_title(title, loc="left", fontweight="bold", fontsize=9)
    ax.tick_params(axis="x", labelsize=8, colors="#555")
    for y, v, i in zip(ys, values, range(len(values))):
        text = "n/a" if v is None else (labels[i] if labels else f"{v:,.3g}")
        ax.text((v or 0) + top * 0.02, y, text, va="center", fontsize=8, color="#888" if v is None else "black")


def grouped_bars(ax, title: str, groups: list[str], series: list[tuple[str, str, list[float]]]) -> None:
    """Groups along x, one bar per series in each, the value above each bar, a legend below."""
    n = max(1, len(series))
    width = 0.8 / n
    for si, (name, color, vals) in enumerate(series):
        xs = [gi - 0.4 + width * (si + 0.5) for gi in range(len(groups))]
        bars = ax.bar(xs, vals, width * 0.95, color=color, label=name)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in vals], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_title(title, loc="left", fontweight="bold", fontsize=9)
    ax.grid(axis="y", color="#eee")
    ax.set_axisbelow(True)
    ax.margins(y=0.15)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=n, frameon=False, fontsize=8)


def two_lines(ax, title: str, labels: list[str], left: tuple[str, str, list[float]],
              right: tuple[str, str, list[float]]) -> None:
    """Two series over the same x labels, each on its own y axis (left and right)."""
    xs = list(range(len(labels)))
    handles = []
    for axis, (name, color, vals) in ((ax, left), (ax.twinx(), right)):
        (line,) = axis.plot(xs, vals, marker="o", markersize=4, linewidth=2, color=color, label=name)
        axis.set_ylim(bottom=0, top=max(vals + [0]) * 1.15 or 1)
        axis.tick_params(axis="y", labelsize=8, colors="#555")
        handles.append(line)
    ax.spines["right"].set_visible(True)
    step = max(1, len(labels) // 10)
    ax.set_xticks(xs[::step], labels[::step], fontsize=7)
    ax.grid(axis="y", color="#eee")
    ax.set_title(title, loc="left", fontweight="bold", fontsize=9)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.12), ncol=2, frameon=False, fontsize=8)


def lines_logx(ax, title: str, series: list[tuple[str, str, list[float], list[float | None]]],
               xlabel: str = "", ylabel: str = "", marks: dict[str, float] | None = None, log_y: bool = False) -> None:
    """One line per series (name, color, xs, ys) over a log2 x axis, ticks at the xs given.

    None values break a line (a point not measured); marks[name] = x draws a
    ring round that series' point at x (e.g. its cheapest memory size).
    """
    ticks = sorted({x for _, _, xs, _ in series for x in xs})
    for name, color, xs, ys in series:
        pts = [(x, y) for x, y in zip(xs, ys)]
        ax.plot([x for x, _ in pts], [float("nan") if y is None else y for _, y in pts], marker="o", markersize=4,
                linewidth=2, color=color, label=name)
        if marks and name in marks:
            y = dict(pts).get(marks[name])
            if y is not None:
                ax.plot([marks[name]], [y], marker="o", markersize=11, markerfacecolor="none",
                        markeredgecolor=color, markeredgewidth=1.5, linestyle="none")
    ax.set_xscale("log", base=2)
    if log_y:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

        ax.set_yscale("log")
        # 1-2-5 steps labelled as plain numbers: a decade per label is too coarse to read a value off.
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_locator(NullLocator())
    if ticks:
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks], fontsize=7)
        ax.minorticks_off()
    ax.tick_params(axis="y", labelsize=8, colors="#555")
    ax.grid(color="#eee", which="both")
    ax.set_axisbelow(True)
    ax.set_title(title, loc="left", fontweight="bold", fontsize=9)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    if not log_y:
        ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", frameon=False, fontsize=7)
