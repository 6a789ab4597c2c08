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
