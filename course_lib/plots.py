"""One small plotting style for every notebook: labelled axes, colour-blind-safe colours.

    from course_lib import plots
    ax = plots.line(sizes, {"float32": rates}, xlabel="matrix size", ylabel="GFLOP/s")
    ax = plots.loss_curves({"train": (steps, train_loss), "val": (steps, val_loss)})
    ax = plots.heatmap(weights, row_labels=tokens, col_labels=tokens, title="head 3")

Lines use the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies,
and each line also gets its own marker, so nothing is told by colour alone); heatmaps use
`cividis`, a sequential map designed to read the same with and without colour vision. Every
function labels its axes, draws into `ax` when given one (else a new figure) and returns the
axes; call `plt.show()` (or end the cell with `;`) to display it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

# Okabe & Ito (2008), "Color Universal Design": black first, then the seven colours.
OKABE_ITO = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]
LINE_COLOURS = OKABE_ITO[1:] + OKABE_ITO[:1]  # yellow-orange first reads better than black
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
HEATMAP_CMAP = "cividis"
STYLE = {
    "figure.figsize": (6.0, 3.6),
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.frameon": False,
}


def _values(name: str, v: Any) -> np.ndarray:
    try:
        arr = np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(v).__name__}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
        return ax
    with plt.rc_context(STYLE):
        _, new = plt.subplots(figsize=figsize)
    return new


def _label(ax: Axes, xlabel: str, ylabel: str, title: str | None) -> None:
    for arg, text in (("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{arg} must be a non-empty string: every axis says what it shows")
    with plt.rc_context(STYLE):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.grid(True, alpha=STYLE["grid.alpha"])
        ax.spines[["top", "right"]].set_visible(False)


def line(
    x: Sequence[float],
    ys: Mapping[str, Sequence[float]] | Sequence[float],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """One line per entry of `ys` (a dict of label -> values, or one sequence) against `x`."""
    xs = _values("x", x)
    series = dict(ys) if isinstance(ys, Mapping) else {"": ys}
    if not series:
        raise ValueError("ys must hold at least one line")
    ax = _axes(ax)
    for i, (label, values) in enumerate(series.items()):
        v = _values(f"ys[{label!r}]" if label else "ys", values)
        if len(v) != len(xs):
            raise ValueError(f"ys[{label!r}] has {len(v)} values but x has {len(xs)}")
        ax.plot(
            xs,
            v,
            color=LINE_COLOURS[i % len(LINE_COLOURS)],
            marker=MARKERS[i % len(MARKERS)],
            markersize=4,
            label=label or None,
        )
    if logx:
        ax.set_xscale("log", base=2 if np.all(np.log2(xs[xs > 0]) % 1 == 0) else 10)
    if logy:
        ax.set_yscale("log")
    _label(ax, xlabel, ylabel, title)
    if len(series) > 1 or next(iter(series)):
        ax.legend()
    return ax


BASELINE_STYLES = {"uniform": ":", "unigram": "-.", "bigram": (0, (6, 2, 1, 2, 1, 2))}
_SPLIT_WORDS = {"train": "-", "training": "-", "val": "--", "validation": "--", "test": "--"}


def _run_and_style(name: str) -> tuple[str, str]:
    """Split "GPT val" into ("GPT", "--"): one colour per run, solid training, dashed held-out."""
    head, _, last = name.rpartition(" ")
    if last.lower() in _SPLIT_WORDS:
        return head or last, _SPLIT_WORDS[last.lower()]
    return name, "-"


def loss_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    baselines: Mapping[str, float] | None = None,
    xlabel: str = "step",
    ylabel: str = "loss (nats per token)",
    title: str | None = None,
    logy: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """Loss against step for several runs or splits: `{"train": (steps, losses), ...}`.

    A name ending in "train" / "training" is drawn solid and one ending in "val" / "validation"
    / "test" dashed, in the colour of its run ("GPT train" and "GPT val" share a colour), so
    held-out curves are told apart by line style, not by colour only. `baselines` (for example
    `losses.baseline_losses(...)`) adds a grey horizontal reference line per entry, each in its
    own line style and labelled with its name and value.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty dict of name -> (steps, losses)")
    ax = _axes(ax)
    runs: dict[str, int] = {}
    for name, pair in curves.items():
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"curves[{name!r}] must be a pair (steps, losses)")
        steps, losses = (
            _values(f"curves[{name!r}] steps", pair[0]),
            _values(f"curves[{name!r}] losses", pair[1]),
        )
        if len(steps) != len(losses):
            raise ValueError(f"curves[{name!r}] has {len(steps)} steps but {len(losses)} losses")
        run, linestyle = _run_and_style(str(name))
        i = runs.setdefault(run, len(runs))
        ax.plot(
            steps,
            losses,
            color=LINE_COLOURS[i % len(LINE_COLOURS)],
            linestyle=linestyle,
            marker=MARKERS[i % len(MARKERS)] if len(steps) <= 30 else None,
            markersize=4,
            label=name,
        )
    for j, (name, value) in enumerate((baselines or {}).items()):
        value = float(_values(f"baselines[{name!r}]", [value])[0])
        style = BASELINE_STYLES.get(name, [":", "-.", "--"][j % 3])
        ax.axhline(value, color="0.35", linestyle=style, linewidth=1, label=f"{name} {value:.2f}")
    if logy:
        ax.set_yscale("log")
    _label(ax, xlabel, ylabel, title)
    ax.legend(fontsize=8 if baselines else None)
    return ax


def heatmap(
    matrix: Any,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    xlabel: str = "key position",
    ylabel: str = "query position",
    title: str | None = None,
    colorbar_label: str = "weight",
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """A 2-D array as a heatmap with the colour-blind-safe `cividis` map and a colour bar.

    matrix: (rows, cols), a tensor or array. annotate=True writes each value in its cell.
    """
    m = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D (rows, cols), got shape {m.shape}")
    for arg, labels, n in (
        ("row_labels", row_labels, m.shape[0]),
        ("col_labels", col_labels, m.shape[1]),
    ):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{arg} has {len(labels)} labels for {n} {arg.split('_')[0]}s")
    rows, cols = m.shape
    ax = _axes(ax, figsize=(min(1.2 + 0.45 * cols, 10), min(1.0 + 0.4 * rows, 8)))
    image = ax.imshow(m, cmap=HEATMAP_CMAP, vmin=vmin, vmax=vmax, aspect="auto")
    bar = ax.figure.colorbar(image, ax=ax)
    bar.set_label(colorbar_label)
    if row_labels is not None:
        ax.set_yticks(range(rows), labels=list(row_labels))
    if col_labels is not None:
        ax.set_xticks(range(cols), labels=list(col_labels), rotation=45, ha="right")
    if annotate:
        mid = (np.nanmin(m) + np.nanmax(m)) / 2
        for r in range(rows):
            for c in range(cols):
                colour = "black" if m[r, c] > mid else "white"  # cividis: dark low, light high
                ax.text(c, r, f"{m[r, c]:.2f}", ha="center", va="center", color=colour, fontsize=8)
    _label(ax, xlabel, ylabel, title)
    ax.grid(False)
    return ax
