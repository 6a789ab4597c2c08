"""Figures: Table 2 style heatmaps of mapped accuracy.

Figures fit whatever the names: the title is wrapped to the figure's width,
long network labels are wrapped (and cut after three lines, the tables keep
them whole), and the figure grows until every text lies inside it.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from ..fit.methods import METHODS
from .common import RIDGE

LABEL_CHARS, LABEL_LINES = 22, 3


def short_label(name: str) -> str:
    """A tick label of at most :data:`LABEL_LINES` lines of :data:`LABEL_CHARS` characters."""
    lines = textwrap.wrap(str(name), LABEL_CHARS, break_long_words=True, break_on_hyphens=True) or [""]
    if len(lines) > LABEL_LINES:
        lines = lines[:LABEL_LINES]
        lines[-1] = lines[-1][: LABEL_CHARS - 1] + "…"
    return "\n".join(lines)


def fit_texts(fig, title=None, max_rounds: int = 6, max_growth: float = 4.0) -> None:
    """Make every text of ``fig`` (constrained layout) lie inside it: wrap ``title`` (a suptitle) to its width, grow
    the figure while anything drawn sticks out, to at most ``max_growth`` times its size in each direction.

    What is drawn is what ``savefig(bbox_inches="tight")`` would keep (``fig.get_tightbbox``): tick
    labels a locator made outside the axes' view are not drawn and do not count.
    """
    raw = title.get_text().replace("\n", " ") if title is not None else ""
    w0, h0 = fig.get_size_inches()
    for _ in range(max_rounds):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        if title is not None:  # wrap to the figure's width, measured in this renderer
            title.set_text(raw)
            width = title.get_window_extent(renderer).width
            room = 0.94 * fig.bbox.width
            if width > room:
                chars = max(8, int(len(raw) * room / width))
                title.set_text(textwrap.fill(raw, chars, break_long_words=True, break_on_hyphens=True))
        fig.canvas.draw()  # the constrained layout places axes, colorbar and title afresh
        box = fig.get_tightbbox(renderer)  # inches
        w, h = fig.get_size_inches()
        over_x = max(0.0, -box.x0) + max(0.0, box.x1 - w)
        over_y = max(0.0, -box.y0) + max(0.0, box.y1 - h)
        if over_x * fig.dpi <= 0.5 and over_y * fig.dpi <= 0.5:
            return
        fig.set_size_inches(min(w + over_x + 0.3, max_growth * w0), min(h + over_y + 0.3, max_growth * h0))


def heatmap(acc: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = "",
            paths=(), xlabel: str = "target network (classifier)", ylabel: str = "source network (features)",
            keep: bool = False, note: str = ""):
    """Draw a Table 2 style matrix and save it to each of ``paths``.

    Parameters
    ----------
    acc : DataFrame [source, target]
        Accuracies in [0, 1]; the diagonal holds each network's native accuracy.
    labels : dict key -> display name, optional
    controls : iterable of keys
        Control networks (the paper's random network): their rows and columns
        get a grey background, as in the paper, and do not set the colour scale.
    Each cell shows the accuracy and, below it, the percent change relative to
    the row (source) network's native accuracy; the redder, the larger the
    penalty of the mapping for the source network. ``note`` is printed below
    the matrix (:func:`interval_note`). ``keep``: return the figure instead of
    closing it (tests look at its layout).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    keys = list(acc.index)
    labels = labels or {}
    names = [short_label(labels.get(k, k)) for k in keys]
    a = acc.to_numpy(dtype=float)
    native = np.diag(a)
    pct = 100.0 * (a - native[:, None]) / np.where(native[:, None] > 0, native[:, None], np.nan)
    controls = set(controls)
    is_ctrl = np.array([k in controls for k in keys])
    trained = ~(is_ctrl[:, None] | is_ctrl[None, :])
    penalty = np.clip(-pct, 0, None)
    vmax = np.nanmax(np.where(trained, penalty, np.nan)) if trained.any() else 1.0
    vmax = max(float(np.nan_to_num(vmax)), 1.0)
    cmap = plt.get_cmap("Reds")
    norm = Normalize(0, vmax)
    k = len(keys)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.2, 0.9 * k + 1.8), layout="constrained")
    for i in range(k):
        for j in range(k):
            if is_ctrl[i] or is_ctrl[j]:
                face = (0.85, 0.85, 0.85)
            else:
                face = cmap(norm(penalty[i, j])) if np.isfinite(penalty[i, j]) else (1, 1, 1)
            ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=face, edgecolor="white", linewidth=1.5))
            if np.isfinite(a[i, j]):
                dark = not (is_ctrl[i] or is_ctrl[j]) and norm(penalty[i, j]) > 0.6
                color = "white" if dark else "black"
                ax.text(j + 0.5, i + 0.42, f"{100 * a[i, j]:.2f}%", ha="center", va="center", fontsize=10,
                        color=color, weight="bold" if i == j else "normal")
                ax.text(j + 0.5, i + 0.72, f"{pct[i, j]:+.1f}%", ha="center", va="center", fontsize=7, color=color)
    ax.set_xlim(0, k)
    ax.set_ylim(k, 0)
    ax.set_xticks(np.arange(k) + 0.5, names, rotation=35, ha="right")
    ax.set_yticks(np.arange(k) + 0.5, names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, fraction=0.04, pad=0.02, label="penalty vs. source accuracy (%)")
    if note:
        fig.supxlabel(note, fontsize=7, color="dimgrey")
    fit_texts(fig, fig.suptitle(title) if title else None)
    for p in paths:
        fig.savefig(p, dpi=150)
    if keep:
        return fig
    plt.close(fig)
    return None


def interval_note(table: pd.DataFrame, level: float | None = None, method: str = RIDGE) -> str:
    """One line for a heatmap: the widest interval half-width among the cells it draws (``method`` and native
    rows of ``table``; the rate is the table's first ``*_low`` / ``*_high`` column pair), in points."""
    from .common import NATIVE

    low = next((c for c in table.columns if c.endswith("_low")), None)
    if low is None:
        return ""
    rate = low[: -len("_low")]
    t = table[table.method.isin([method, NATIVE])]
    half = float(((t[f"{rate}_high"] - t[low]) / 2).max()) if len(t) else float("nan")
    if not np.isfinite(half):
        return ""
    what = f"{round(100 * level)}% " if level else ""
    return (f"{what}bootstrap intervals of the cells: half-width at most {100 * half:.1f} points "
            f"(each cell's interval: {rate}_low, {rate}_high in the table)")


def colour_range(m: np.ndarray, limits: tuple) -> tuple[float, float]:
    """The colour range of one index's panel: the span of its values (within the index's ``limits``), so that
    values of 0.85 and 0.89 differ in colour; the index's whole range when its values are all alike."""
    values = m[np.isfinite(m)]
    if not len(values):
        return limits
    lo, hi = max(limits[0], float(values.min())), min(limits[1], float(values.max()))
    return (lo, hi) if hi > lo else limits


def similarity_heatmap(table: pd.DataFrame, order: list[str], labels: dict[str, str] | None = None, controls=(),
                       title: str = "", paths=()) -> None:
    """One panel per similarity index (rows source, columns target); symmetric indices fill both triangles.

    Each panel has its own colour scale: CKA, CCA, SVCCA, mutual k-NN and R^2 in [0, 1],
    debiased CKA and CKNNA in [-1, 1] (darker = more similar), the angular shape metric in radians from 0
    (the same up to rotation) to pi/2 (darker = more similar, i.e. smaller); within those limits, the span
    of the panel's values (:func:`colour_range`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .indices import INDICES
    from .similarity import matrices

    mats = matrices(table, order)
    indices = [i for i in INDICES if i in mats]
    labels = labels or {}
    names = [short_label(labels.get(k, k)) for k in order]
    k = len(order)
    cols = min(3, len(indices))
    rows = -(-len(indices) // cols)
    side = max(3.2, 0.55 * k + 1.6)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, (0.5 * k + 1.5) * rows + 0.5), squeeze=False,
                             layout="compressed")
    for ax in axes.flat[len(indices):]:
        ax.set_visible(False)
    for ax, index in zip(axes.flat, indices):
        spec = INDICES[index]
        m = mats[index].to_numpy(dtype=float)
        lo, hi = colour_range(m, spec.limits)
        higher = spec.higher_is_similar
        im = ax.imshow(m, cmap="Blues" if higher else "Blues_r", vmin=lo, vmax=hi)
        for i in range(k):
            for j in range(k):
                if np.isfinite(m[i, j]):
                    shade = (m[i, j] - lo) / (hi - lo) if hi > lo else 0.5
                    dark = (shade > 0.6) if higher else (shade < 0.4)
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        for t in ax.get_xticklabels() + ax.get_yticklabels():
            if t.get_text() in {short_label(labels.get(c, c)) for c in controls}:
                t.set_color("grey")
        chance = table.loc[table["index"] == index, "chance"] if "chance" in table else pd.Series(dtype=float)
        # an index with a chance level says it under its title (its mean over the pairs: n is the same for all)
        ax.set_title((spec.title or index) + (f"\nchance {chance.mean():.2g}" if chance.notna().any() else ""),
                     fontsize=10)
        ax.set_xlabel("network" if spec.symmetric else "target", fontsize=8)
        ax.set_ylabel("network" if spec.symmetric else "source", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    fit_texts(fig, fig.suptitle(title) if title else None)
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)


def sample_efficiency_figure(table: pd.DataFrame, target: str, labels: dict[str, str] | None = None, controls=(),
                             title: str = "", whole: bool = False):
    """The figure of :func:`sample_efficiency` (returned open, for a caller or a test to inspect)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or {}
    t = table[(table.target == target) & (table.method != "native")]
    native = table[(table.source == target) & (table.method == "native")].accuracy
    sizes = sorted({int(v) for v in t.n_fit.dropna()})
    fig, ax = plt.subplots(figsize=(8.4, 4.2), layout="constrained")
    markers = dict(zip(METHODS, "os^Dv<>ph*"))  # by the registry's order: ridge o, lstsq s, procrustes ^
    colours = plt.get_cmap("tab10")
    for i, (source, ts) in enumerate(t.groupby("source", sort=False)):
        for method, tm in ts.groupby("method", sort=False):
            tm = tm.sort_values("n_fit")
            colour = "grey" if source in controls else colours(i % 10)
            ax.plot(tm.n_fit, tm.accuracy, marker=markers.get(method, "x"), markersize=4, color=colour,
                    linestyle="-" if method == RIDGE else ":",
                    label=f"{short_label(labels.get(source, source))} ({method})")
            if {"accuracy_low", "accuracy_high"} <= set(tm.columns):  # the interval as a band
                ax.fill_between(tm.n_fit, tm.accuracy_low, tm.accuracy_high, color=colour, alpha=0.12, linewidth=0)
    if len(native):
        ax.axhline(float(native.iloc[0]), color="black", linestyle="--", linewidth=1,
                   label=f"{short_label(labels.get(target, target))} native")
    ax.set_xscale("log")
    ax.minorticks_off()
    if sizes:  # ticks at the fit sizes themselves; the whole fit split marked "all"
        ax.set_xticks(sizes, [f"{n:,}" + ("\n(all)" if whole and n == sizes[-1] else "") for n in sizes])
        ax.set_xlim(sizes[0] / 1.25, sizes[-1] * 1.25)
    ax.set_xlabel("fit samples (first n of the fit split)")
    ax.set_ylabel(textwrap.fill(f"accuracy of {labels.get(target, target)}'s classifier", 40))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    fig.legend(fontsize=7, loc="outside right upper", ncol=1 + (len(t.groupby(["source", "method"])) > 16))
    fit_texts(fig, fig.suptitle(title, fontsize=10) if title else None)
    return fig


def sample_efficiency(table: pd.DataFrame, target: str, labels: dict[str, str] | None = None, controls=(),
                      title: str = "", paths=(), whole: bool = False) -> None:
    """Target-classifier accuracy of maps into ``target`` against fit samples (log x, ticked at the fit sizes;
    ``whole``: the largest is the whole fit split, marked "all"), one line per source (colour) and method
    (marker), each with its bootstrap interval as a shaded band; the target's native accuracy dashed; the
    legend beside the axes, never on the curves."""
    import matplotlib.pyplot as plt

    fig = sample_efficiency_figure(table, target, labels, controls, title, whole)
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)


def methods_figure(table: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = ""):
    """The map methods side by side (``tables/closed_set.csv``, returned open): for every ordered pair of
    networks, the target classifier's accuracy on mapped source features minus the target's own accuracy, one
    column per method (fitted maps in the registry's order, then the analytic map and the identity), one line
    per pair across them (pairs with a control grey), and each method's median as a black bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .common import ANALYTIC, IDENTITY, NATIVE

    labels = labels or {}
    t = table[table.method != NATIVE]
    order = [m for m in [*METHODS, ANALYTIC, IDENTITY] if m in set(t.method)]
    x = {m: i for i, m in enumerate(order)}
    loss = t.accuracy - t.target_accuracy
    plain = ~t.source.isin(controls) & ~t.target.isin(controls)
    # the range of the pairs without a control: a control's pairs (far off by design) would flatten the rest;
    # theirs beyond it are drawn at its edge as triangles pointing the way they go
    span = loss[plain] if plain.any() else loss
    pad = max(0.02, 0.1 * float(span.max() - span.min()))
    lo, hi = min(float(span.min()) - pad, -pad), max(float(span.max()) + pad, pad)
    fig, ax = plt.subplots(figsize=(1.3 * len(order) + 3.2, 4.2), layout="constrained")
    for (a, b), tp in t.groupby(["source", "target"], sort=False):
        tp = tp[tp.method.isin(order)].sort_values("method", key=lambda s: s.map(x))
        control = a in controls or b in controls
        y = (tp.accuracy - tp.target_accuracy).to_numpy(dtype=float)
        xs = tp.method.map(x).to_numpy()
        ax.plot(xs, np.clip(y, lo, hi), marker="o", markersize=3, linewidth=0.8,
                color="lightgrey" if control else "tab:blue", alpha=0.9 if control else 0.6, zorder=1 if control else 2)
        for xi, yi in zip(xs, y):
            if yi < lo or yi > hi:
                ax.plot(xi, hi if yi > hi else lo, marker="^" if yi > hi else "v", color="grey", markersize=6,
                        zorder=3)
    ax.set_ylim(lo, hi)
    for m in order:
        vals = loss[plain & (t.method == m)]
        if len(vals):
            ax.hlines(float(vals.median()), x[m] - 0.3, x[m] + 0.3, color="black", linewidth=2, zorder=3)
    ax.axhline(0.0, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(order)), order)
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set_ylabel(textwrap.fill("accuracy on mapped features minus the target's own", 36))
    ax.set_xlabel("map (one line per ordered pair, grey with a control; black: median of the others)")
    ax.grid(alpha=0.3, axis="y")
    fit_texts(fig, fig.suptitle(title, fontsize=10) if title else None)
    return fig


def methods(table: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = "",
            paths=()) -> None:
    """Save :func:`methods_figure` to ``paths``."""
    import matplotlib.pyplot as plt

    fig = methods_figure(table, labels, controls, title)
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)


def _save(fig, paths) -> None:
    import matplotlib.pyplot as plt

    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)


def _method_colours(methods) -> dict:
    """One colour per map method of a figure, the registry's methods first (the analytic map, if any, last)."""
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def asymmetry_figure(table: pd.DataFrame, order: list[str], labels: dict[str, str] | None = None, controls=(),
                     title: str = ""):
    """The ordered matrix of ``tables/asymmetry.csv`` (returned open), one panel per method: the cell (row A,
    column B) is the share of B's own accuracy that A -> B keeps (``relative_ab``); a black frame marks the cell of
    the direction that decides an order (A's features contain B's: the paired interval of ``relative_diff``
    excludes 0), with "row ⊇ column" in it. Colours diverge from 1 (red: the direction loses part of the
    target's accuracy, blue: it exceeds it) as far as the pairs without a control reach; rows and columns with a
    control are grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    from .asymmetry import A_CONTAINS_B, B_CONTAINS_A

    labels = labels or {}
    methods = [m for m in [*METHODS, *table.method.unique()] if m in set(table.method)]
    methods = list(dict.fromkeys(methods))
    k = len(order)
    at = {n: i for i, n in enumerate(order)}
    names = [short_label(labels.get(n, n)) for n in order]
    is_ctrl = np.array([n in set(controls) for n in order])
    # a diverging scale centred at 1 (the direction keeps all of the target's accuracy), as wide as the pairs
    # without a control reach: their relative accuracies are close to 1, and a [0, 1] scale would hide them
    plain = table[~table.a.isin(controls) & ~table.b.isin(controls)]
    both = np.concatenate([plain.relative_ab.to_numpy(float), plain.relative_ba.to_numpy(float)])
    both = both[np.isfinite(both)]
    dev = max(0.02, float(np.max(np.abs(both - 1.0)))) if len(both) else 0.5
    cmap, norm = plt.get_cmap("RdBu"), Normalize(1.0 - dev, 1.0 + dev)
    fig, axes = plt.subplots(1, len(methods), figsize=((1.0 * k + 1.6) * len(methods) + 1.2, 0.9 * k + 2.2),
                             layout="constrained", squeeze=False)
    for ax, m in zip(axes[0], methods):
        rel = np.full((k, k), np.nan)
        framed = []
        for r in table[table.method == m].itertuples():
            i, j = at[r.a], at[r.b]
            rel[i, j], rel[j, i] = r.relative_ab, r.relative_ba
            if r.order == A_CONTAINS_B:
                framed.append((i, j))
            elif r.order == B_CONTAINS_A:
                framed.append((j, i))
        for i in range(k):
            for j in range(k):
                if i == j:
                    face = (1, 1, 1)
                elif is_ctrl[i] or is_ctrl[j]:
                    face = (0.85, 0.85, 0.85)
                else:
                    face = cmap(norm(rel[i, j])) if np.isfinite(rel[i, j]) else (1, 1, 1)
                ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=face, edgecolor="white", linewidth=1.5))
                if i != j and np.isfinite(rel[i, j]):
                    dark = not (is_ctrl[i] or is_ctrl[j]) and abs(rel[i, j] - 1.0) > 0.6 * dev
                    ax.text(j + 0.5, i + 0.42, f"{rel[i, j]:.3f}", ha="center", va="center", fontsize=9,
                            color="white" if dark else "black")
                    if (i, j) in framed:
                        ax.text(j + 0.5, i + 0.75, "row ⊇ column", ha="center", va="center", fontsize=6,
                                color="white" if dark else "black", weight="bold")
        for i, j in framed:
            ax.add_patch(plt.Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False, edgecolor="black", linewidth=2.2))
        ax.set_xlim(0, k)
        ax.set_ylim(k, 0)
        ax.set_xticks(np.arange(k) + 0.5, names, rotation=35, ha="right")
        ax.set_yticks(np.arange(k) + 0.5, names if ax is axes[0][0] else [""] * k)
        ax.set_xlabel("target B (classifier)")
        ax.set_title(m, fontsize=10)
        ax.tick_params(length=0)
        for s in ax.spines.values():
            s.set_visible(False)
    axes[0][0].set_ylabel("source A (features)")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes[0]), fraction=0.03, pad=0.02,
                 label="accuracy of A -> B / B's own accuracy", extend="both")
    fig.supxlabel("framed: the row network's features contain the column network's (paired interval excludes 0)",
                  fontsize=7, color="dimgrey")
    fit_texts(fig, fig.suptitle(title, fontsize=10) if title else None)
    return fig


def asymmetry(table: pd.DataFrame, order: list[str], labels: dict[str, str] | None = None, controls=(),
              title: str = "", paths=()) -> None:
    """Save :func:`asymmetry_figure` to ``paths``."""
    _save(asymmetry_figure(table, order, labels, controls, title), paths)


def composition_figure(table: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = ""):
    """Direct against composed accuracy of every triple of ``tables/composition.csv`` (returned open): one point
    per triple (A, B, C) and method at (accuracy of A -> C, accuracy of A -> B -> C), triples with a control
    hollow; on the diagonal the hop costs nothing, below it the composed map loses accuracy. The axes span the
    triples without a control; the others beyond it sit at its edge as triangles. The legend gives each method's
    mean loss per hop over every triple."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if m in set(table.method)]
    colours = _method_colours(methods)
    fig, ax = plt.subplots(figsize=(5.6, 5.0), layout="constrained")
    ctrl = table.source.isin(controls) | table.via.isin(controls) | table.target.isin(controls)
    # the range of the triples without a control (one into a classifier at chance would flatten the rest); the
    # others below it sit at its edge as triangles
    span = table[~ctrl] if (~ctrl).any() else table
    lo = float(min(span.accuracy_direct.min(), span.accuracy_composed.min(), 1.0))
    lo = max(0.0, lo - 0.05)
    for m in methods:
        t, c = table[table.method == m], ctrl[table.method == m]
        loss = -t["diff"].mean()
        for keep, style in ((~c, {"color": colours[m]}), (c, {"facecolors": "none", "edgecolors": colours[m]})):
            if not keep.any():
                continue
            x, y = t.accuracy_direct[keep].to_numpy(float), t.accuracy_composed[keep].to_numpy(float)
            out = (x < lo) | (y < lo)
            first = "color" in style or not (~c).any()  # one legend entry per method
            ax.scatter(x[~out], y[~out], s=22, alpha=0.75, **style,
                       label=f"{m}: mean loss per hop {loss:+.3f}" if first else None)
            if out.any():
                ax.scatter(np.maximum(x[out], lo), np.maximum(y[out], lo), s=30, marker="v", alpha=0.75, **style)
    ax.plot([lo, 1], [lo, 1], color="black", linestyle="--", linewidth=1)
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_xlabel("accuracy of the direct map A -> C")
    ax.set_ylabel("accuracy of the composed map A -> B -> C")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", title="hollow: a control in the triple (triangles: beyond the axes)",
              title_fontsize=7)
    fit_texts(fig, fig.suptitle(title, fontsize=10) if title else None)
    return fig


def composition(table: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = "",
                paths=()) -> None:
    """Save :func:`composition_figure` to ``paths``."""
    _save(composition_figure(table, labels, controls, title), paths)


def classifier_view_figure(table: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = "",
                           r2_floor: float = -1.0):
    """``tables/classifier_view.csv`` (returned open) in two panels sharing the y axis, the accuracy loss
    (mapped accuracy minus the target's own): against the feature fit ``r2`` (left; values below ``r2_floor``
    drawn at it as left-pointing triangles) and against the share of the residual the classifier sees (right).
    One colour per method (the analytic map included); pairs with a control hollow; pairs whose target's
    classifier sees everything (``sees_all``) are crosses at 1. The y axis spans the pairs without a control
    (a control's analytic rows are off by its chance accuracy); the others sit at its edge as triangles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys([m for m in [*METHODS, *table.method.unique()] if m in set(table.method)]))
    colours = _method_colours(methods)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 4.6), layout="constrained", sharey=True)
    ctrl = (table.source.isin(controls) | table.target.isin(controls)).to_numpy()
    # the loss range of the pairs without a control; the others beyond it are drawn at its edge
    span = table.accuracy_loss[~ctrl] if (~ctrl).any() else table.accuracy_loss
    pad = max(0.02, 0.1 * float(span.max() - span.min()))
    y_lo, y_hi = min(float(span.min()) - pad, -pad), max(float(span.max()) + pad, pad)
    for m in methods:
        sel = (table.method == m).to_numpy()
        for keep, hollow in ((sel & ~ctrl, False), (sel & ctrl, True)):
            t = table[keep]
            if not len(t):
                continue
            style = {"facecolors": "none", "edgecolors": colours[m]} if hollow else {"color": colours[m]}
            x = t.r2.to_numpy(dtype=float)
            y = np.clip(t.accuracy_loss.to_numpy(dtype=float), y_lo, y_hi)
            edge = (y <= y_lo) | (y >= y_hi)
            low = x < r2_floor
            first = not hollow or not (sel & ~ctrl).any()  # one legend entry per method
            left.scatter(x[~low & ~edge], y[~low & ~edge], s=22, alpha=0.75, label=m if first else None, **style)
            if (low | edge).any():
                left.scatter(np.maximum(x[low | edge], r2_floor), y[low | edge], s=30, marker="<", alpha=0.75,
                             **style)
            full = t.sees_all.astype(bool).to_numpy()
            f = t.seen_fraction.to_numpy(dtype=float)
            right.scatter(f[~full & ~edge], y[~full & ~edge], s=22, alpha=0.75, **style)
            if (edge & ~full).any():
                right.scatter(f[edge & ~full], y[edge & ~full], s=30, marker="^", alpha=0.75, **style)
            if full.any():
                right.scatter(f[full], y[full], s=30, marker="x", color=colours[m], alpha=0.75)
    for ax in (left, right):
        ax.axhline(0.0, color="black", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
    left.set_ylim(y_lo, y_hi)
    left.set_xlabel(f"feature fit R2 on the evaluation split (below {r2_floor:g}: at the edge)")
    left.set_ylabel(textwrap.fill("accuracy on mapped features minus the target's own", 36))
    right.set_xlabel("share of the residual in the classifier's row space")
    right.set_xlim(-0.02, 1.02)
    left.legend(fontsize=7, loc="lower left", title="hollow: a control; x: classifier sees all; triangles: beyond "
                "the axes", title_fontsize=7)
    fit_texts(fig, fig.suptitle(title, fontsize=10) if title else None)
    return fig


def classifier_view(table: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = "",
                    paths=()) -> None:
    """Save :func:`classifier_view_figure` to ``paths``."""
    _save(classifier_view_figure(table, labels, controls, title), paths)


def shared_space_figure(table: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = ""):
    """``tables/shared_space.csv`` (returned open): every ordered pair at (accuracy of the direct ridge map A -> B,
    accuracy of A -> shared -> B), with both intervals as error bars, pairs with a control hollow. On the dashed
    diagonal the shared space costs nothing; below it the pair loses accuracy by going through it. The axes span
    the pairs without a control; the others beyond it sit at its edge as triangles. The legend gives the mean
    difference and the two routes' parameter counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.0), layout="constrained")
    ctrl = (table.source.isin(controls) | table.target.isin(controls)).to_numpy()
    span = table[~ctrl] if (~ctrl).any() else table
    lo = max(0.0, float(min(span.accuracy_direct.min(), span.accuracy_shared.min(), 1.0)) - 0.05)
    colour = _method_colours([RIDGE])[RIDGE]
    k = int(table.shared_dim.iloc[0]) if len(table) else 0
    for keep, hollow in ((~ctrl, False), (ctrl, True)):
        t = table[keep]
        if not len(t):
            continue
        x, y = t.accuracy_direct.to_numpy(float), t.accuracy_shared.to_numpy(float)
        out = (x < lo) | (y < lo)
        style = {"facecolors": "none", "edgecolors": colour} if hollow else {"color": colour}
        label = None
        if not hollow:
            label = (f"{len(t)} pairs without a control: mean shared - direct {t['diff'].mean():+.3f}")
        ax.errorbar(x[~out], y[~out],
                    xerr=[x[~out] - t.accuracy_direct_low.to_numpy(float)[~out],
                          t.accuracy_direct_high.to_numpy(float)[~out] - x[~out]],
                    yerr=[y[~out] - t.accuracy_shared_low.to_numpy(float)[~out],
                          t.accuracy_shared_high.to_numpy(float)[~out] - y[~out]],
                    fmt="none", ecolor=colour, alpha=0.25, linewidth=0.8)
        ax.scatter(x[~out], y[~out], s=24, alpha=0.8, label=label, **style)
        if out.any():
            ax.scatter(np.maximum(x[out], lo), np.maximum(y[out], lo), s=30, marker="v", alpha=0.8, **style)
    ax.plot([lo, 1], [lo, 1], color="black", linestyle="--", linewidth=1)
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_xlabel("accuracy of the direct ridge map A -> B")
    ax.set_ylabel(f"accuracy of A -> shared ({k} dims) -> B")
    ax.grid(alpha=0.3)
    if len(table):
        sizes = table.drop_duplicates("source")
        ax.legend(fontsize=7, loc="upper left", title_fontsize=7,
                  title="hollow: a control in the pair (triangles: beyond the axes)\nparameters per pair: "
                        f"shared {int(table.parameters_shared.median()):,}, direct "
                        f"{int(table.parameters_direct.median()):,} (median); {len(sizes)} networks")
    fit_texts(fig, fig.suptitle(title, fontsize=10) if title else None)
    return fig


def shared_space(table: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = "",
                 paths=()) -> None:
    """Save :func:`shared_space_figure` to ``paths``."""
    _save(shared_space_figure(table, labels, controls, title), paths)


def index_predicts_figure(table: pd.DataFrame, pairs: pd.DataFrame, title: str = "", outcome: str = "accuracy"):
    """``tables/index_predicts_pairs.csv`` as scatters (returned open): one panel per predictor (each similarity
    index, then the maps' fit R2), x the predictor, y the mapped ``outcome`` of every ordered pair without a
    control, one colour per method; each panel's title gives the ridge maps' Spearman with its interval over
    resampled networks (``tables/index_predicts.csv``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predictors = list(dict.fromkeys(pairs.predictor))
    methods = [m for m in METHODS if m in set(pairs.method)]
    colours = _method_colours(methods)
    cols = min(4, max(1, len(predictors)))
    rows = int(np.ceil(len(predictors) / cols)) if predictors else 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.9 * rows), layout="constrained", squeeze=False,
                             sharey=True)
    rho = table.set_index(["predictor", "method", "outcome"]) if len(table) else None
    for ax, p in zip(axes.flat, predictors):
        for m in methods:
            t = pairs[(pairs.predictor == p) & (pairs.method == m)]
            ax.scatter(t.value, t[outcome], s=14, alpha=0.7, color=colours[m], label=m)
        head = p
        if rho is not None and (p, RIDGE, outcome) in rho.index:
            r = rho.loc[(p, RIDGE, outcome)]
            ends = (f"[{r.spearman_low:+.2f}, {r.spearman_high:+.2f}]" if np.isfinite(r.spearman_low)
                    else f"(no interval: {int(r.resamples_defined)} resamples defined)")
            head = f"{p}: rho {r.spearman:+.2f} {ends}"
        ax.set_title(textwrap.fill(head, 34), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(predictors):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"mapped {outcome}" if outcome == "accuracy" else outcome, fontsize=8)
    if predictors:
        axes.flat[0].legend(fontsize=7, loc="lower right")
    fit_texts(fig, fig.suptitle(title, fontsize=10) if title else None)
    return fig


def index_predicts(table: pd.DataFrame, pairs: pd.DataFrame, title: str = "", paths=()) -> None:
    """Save :func:`index_predicts_figure` to ``paths``."""
    _save(index_predicts_figure(table, pairs, title), paths)


def layer_labels(names: list[str]) -> dict[str, str]:
    """{name: tick label} for one network's layer names: a TFLite tensor of fused operations is named by all of
    them joined with ``;``, so only the first is kept; then the ``/``-separated path every name shares (a model's
    scope, ``efficientnet-lite3/model/``) is dropped, so that the ticks show what differs:
    ``["net/model/stem/Relu6;net/model/stem/bn", "net/model/blocks_4/Relu6", "embedding"]`` are labelled
    ``stem/Relu6``, ``blocks_4/Relu6`` and ``embedding``.
    """
    first = {n: n.split(";", 1)[0] for n in names}
    paths = [v.split("/") for v in first.values() if "/" in v]
    common = 0
    if len(paths) > 1:
        while all(len(p) > common + 1 and p[common] == paths[0][common] for p in paths):
            common += 1
    return {n: "/".join(v.split("/")[common:]) if "/" in v else v for n, v in first.items()}


def _layer_names(table: pd.DataFrame, network: str, side: str) -> list[str]:
    """A network's layers of a layer table in depth order (``side``: ``source`` or ``target``)."""
    rows = table[table[side] == network][[f"{side}_layer", f"{side}_depth"]].drop_duplicates()
    return rows.sort_values(f"{side}_depth", kind="stable")[f"{side}_layer"].tolist()


def layer_similarity_figure(table: pd.DataFrame, order: list[str], labels: dict[str, str] | None = None, controls=(),
                            title: str = "", index: str | None = None):
    """The figure of :func:`layer_similarity` (returned open): for the first index of ``tables/layer_similarity.csv``
    (or ``index``), one layer x layer panel per pair of networks A <= B in ``order`` (upper triangle of panels, A
    with itself on the diagonal), rows A's layers from shallow to deep, columns B's, on one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .indices import INDICES

    index = index or table["index"].iloc[0]
    spec = INDICES[index]
    t = table[table["index"] == index]
    labels = labels or {}
    order = [k for k in order if k in set(t.source) | set(t.target)]
    layers = {k: list(dict.fromkeys(_layer_names(t, k, "source") + _layer_names(t, k, "target"))) for k in order}
    value = {}
    for r in t.itertuples():
        value[(r.source, r.source_layer, r.target, r.target_layer)] = r.value
        if spec.symmetric:
            value[(r.target, r.target_layer, r.source, r.source_layer)] = r.value
    ticks = {k: layer_labels(v) for k, v in layers.items()}
    lo, hi = colour_range(t.value.to_numpy(dtype=float), spec.limits)
    k = len(order)
    size = max(2.4, 0.35 * max(len(v) for v in layers.values()) + 1.4)
    fig, axes = plt.subplots(k, k, figsize=(size * k + 1.2, size * k + 0.6), squeeze=False, layout="constrained")
    im = None
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            ax = axes[i, j]
            if j < i:
                ax.set_visible(False)
                continue
            m = np.array([[value.get((a, la, b, lb), np.nan) for lb in layers[b]] for la in layers[a]], dtype=float)
            im = ax.imshow(m, cmap="viridis" if spec.higher_is_similar else "viridis_r", vmin=lo, vmax=hi,
                           aspect="auto")
            ax.set_xticks(range(len(layers[b])), [short_label(ticks[b][x]) for x in layers[b]], rotation=60,
                          ha="right", fontsize=6)
            ax.set_yticks(range(len(layers[a])), [short_label(ticks[a][x]) for x in layers[a]], fontsize=6)
            grey = {"color": "grey"} if a in controls or b in controls else {}
            ax.set_title(f"{short_label(labels.get(a, a))} x {short_label(labels.get(b, b))}", fontsize=8, **grey)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02,
                     label=(spec.title or index) + " (rows: first network's layers, columns: second's)")
    fit_texts(fig, fig.suptitle(title) if title else None)
    return fig


def layer_similarity(table: pd.DataFrame, order: list[str], labels: dict[str, str] | None = None, controls=(),
                     title: str = "", paths=()) -> None:
    """Save :func:`layer_similarity_figure` to ``paths``."""
    _save(layer_similarity_figure(table, order, labels, controls, title), paths)


def layer_maps_figure(table: pd.DataFrame, order: list[str], labels: dict[str, str] | None = None, controls=(),
                      title: str = "", method: str | None = None):
    """The figure of :func:`layer_maps` (returned open): one panel per target network, accuracy of its classifier
    on every source layer mapped into its embedding (``method``, default the table's first after ``native``)
    against the layer's relative depth (0 the first layer listed, 1 the embedding), a line per source network
    with its interval as a band, the target's own accuracy dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .layers import depth_curves

    labels = labels or {}
    method = method or next(m for m in table.method if m != "native")
    curves = depth_curves(table, method)
    targets = [k for k in order if k in set(curves.target)]
    colours = {k: plt.get_cmap("tab10")(i % 10) for i, k in enumerate(order)}
    cols = min(3, len(targets))
    rows = -(-len(targets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 2.2, 3.2 * rows + 0.6), squeeze=False,
                             layout="constrained", sharey=True)
    for ax in axes.flat[len(targets):]:
        ax.set_visible(False)
    for ax, b in zip(axes.flat, targets):
        mine = curves[curves.target == b]
        for a in [k for k in order if k in set(mine.source)]:
            c = mine[mine.source == a]
            style = {"linestyle": ":" if a in controls else "-"}
            ax.plot(c.relative_depth, c.accuracy, marker="o", color=colours[a], label=labels.get(a, a), **style)
            ax.fill_between(c.relative_depth, c.accuracy_low, c.accuracy_high, color=colours[a], alpha=0.15,
                            linewidth=0)
        own = float(mine.target_accuracy.iloc[0])
        ax.axhline(own, color="black", linestyle="--", linewidth=1, label="the target itself")
        ax.set_title(f"into {short_label(labels.get(b, b))}", fontsize=9)
        ax.set_xlabel("depth of the source layer (0 first listed, 1 embedding)", fontsize=8)
        ax.set_ylabel(f"accuracy ({method})", fontsize=8)
        ax.set_xlim(-0.05, 1.05)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside right center", fontsize=8, title="source")
    fit_texts(fig, fig.suptitle(title) if title else None)
    return fig


def layer_maps(table: pd.DataFrame, order: list[str], labels: dict[str, str] | None = None, controls=(),
               title: str = "", paths=()) -> None:
    """Save :func:`layer_maps_figure` to ``paths``."""
    _save(layer_maps_figure(table, order, labels, controls, title), paths)
