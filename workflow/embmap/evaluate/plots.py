"""Figures: Table 2 style heatmaps of mapped accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd


def heatmap(acc: pd.DataFrame, labels: dict[str, str] | None = None, controls=(), title: str = "",
            paths=(), xlabel: str = "target network (classifier)", ylabel: str = "source network (features)") -> None:
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
    penalty of the mapping for the source network.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    keys = list(acc.index)
    labels = labels or {}
    names = [labels.get(k, k) for k in keys]
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
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.2, 0.9 * k + 1.8))
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
    if title:
        ax.set_title(title)
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)


def similarity_heatmap(table: pd.DataFrame, order: list[str], labels: dict[str, str] | None = None, controls=(),
                       title: str = "", paths=()) -> None:
    """One panel per similarity index (rows source, columns target); symmetric indices fill both triangles.

    Each panel has its own colour scale: CKA, CCA, SVCCA and R^2 in [0, 1]
    (darker = more similar), the angular shape metric in radians from 0
    (the same up to rotation) to pi/2 (darker = more similar, i.e. smaller).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .similarity import INDICES, matrices

    mats = matrices(table, order)
    indices = [i for i in INDICES if i in mats]
    labels = labels or {}
    names = [labels.get(k, k) for k in order]
    k = len(order)
    cols = min(3, len(indices))
    rows = -(-len(indices) // cols)
    side = max(3.2, 0.55 * k + 1.6)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, (0.55 * k + 1.9) * rows + 0.4), squeeze=False)
    for ax in axes.flat[len(indices):]:
        ax.set_visible(False)
    titles = {"cka": "linear CKA", "cca": "mean squared CCA", "svcca": "SVCCA",
              "procrustes": "angular shape metric (rad)", "r2": "ridge R² (fit split)"}
    for ax, index in zip(axes.flat, indices):
        m = mats[index].to_numpy(dtype=float)
        if index == "procrustes":
            im = ax.imshow(m, cmap="Blues_r", vmin=0, vmax=np.pi / 2)
        else:
            im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                if np.isfinite(m[i, j]):
                    dark = (m[i, j] < 0.6) if index == "procrustes" else (m[i, j] > 0.6)
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        for t in ax.get_xticklabels() + ax.get_yticklabels():
            if t.get_text() in {labels.get(c, c) for c in controls}:
                t.set_color("grey")
        ax.set_title(titles.get(index, index), fontsize=10)
        ax.set_xlabel("target" if index == "r2" else "network", fontsize=8)
        ax.set_ylabel("source" if index == "r2" else "network", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)


def sample_efficiency(table: pd.DataFrame, target: str, labels: dict[str, str] | None = None, controls=(),
                      title: str = "", paths=()) -> None:
    """Target-classifier accuracy of maps into ``target`` against fit samples (log x), one line per source
    (colour) and method (marker); the target's native accuracy dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or {}
    t = table[(table.target == target) & (table.method != "native")]
    native = table[(table.source == target) & (table.method == "native")].accuracy
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = {"ridge": "o", "lstsq": "s", "procrustes": "^"}
    colours = plt.get_cmap("tab10")
    for i, (source, ts) in enumerate(t.groupby("source", sort=False)):
        for method, tm in ts.groupby("method", sort=False):
            tm = tm.sort_values("n_fit")
            ax.plot(tm.n_fit, tm.accuracy, marker=markers.get(method, "x"), markersize=4,
                    color="grey" if source in controls else colours(i % 10),
                    linestyle="-" if method == "ridge" else ":", label=f"{labels.get(source, source)} ({method})")
    if len(native):
        ax.axhline(float(native.iloc[0]), color="black", linestyle="--", linewidth=1,
                   label=f"{labels.get(target, target)} native")
    ax.set_xscale("log")
    ax.set_xlabel("fit samples (first n of the fit split)")
    ax.set_ylabel(f"accuracy of {labels.get(target, target)}'s classifier")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=1 + (len(t.groupby(["source", "method"])) > 8))
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
