"""Table 1: what each network is and how well it classifies on its own.

Columns of ``tables/networks.csv`` (one row per network, in the experiment's
order, controls last):

``network, label, handle, classifier_handle, feature_dim, parameters,
input_size, crop_fraction, input_range, classifier, top1, n, randomized,
chance, accuracy_check``

where ``input_size`` reads ``HxW``, ``classifier`` says how C and b were
obtained (``variables`` or ``least_squares``; a bring-your-own store's
``classifier`` attribute ``method``, empty when it does not say), and ``top1`` is the share of
labelled evaluation images whose argmax of ``C f + b`` (plus the classifier's
``label_offset``) equals the label,
computed chunk by chunk from the store. ``chance`` is the share of the most
common label among them (what always guessing it scores), and
``accuracy_check`` (:func:`accuracy_check`) says whether ``top1`` makes sense:
``ok``, ``near chance``, ``far below the others``, ``control`` (not checked:
a control is meant to be at chance) or ``no labels``. A wrong ``input_range``,
a missing mean/std or swapped channels leave ``C f + b`` equal to the model's
logits (the classifier check cannot see them) but put its accuracy at or near
chance, and every table that reads its features carries the mistake.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stores as st

COLUMNS = ["network", "label", "handle", "classifier_handle", "feature_dim", "parameters", "input_size",
           "crop_fraction", "input_range", "classifier", "top1", "n", "randomized", "chance", "accuracy_check"]
CHANCE_SE = 3  # standard errors of a classifier at chance: a top-1 within them is "near chance"
FAR_BELOW = 0.5  # a top-1 below this fraction of the other networks' median is "far below the others"


def chance_rate(labels: np.ndarray) -> float:
    """The share of the most common known label (labels >= 0): the accuracy of always guessing it."""
    known = labels[labels >= 0]
    return float(np.bincount(known).max() / len(known)) if len(known) else float("nan")


def accuracy_check(top1: dict, n: dict, chance: float, controls=()) -> dict:
    """For each network, whether its native accuracy makes sense on this split.

    ``near chance``: ``top1 <= chance + 3 sqrt(chance (1 - chance) / n)``, the
    accuracy of a classifier that only guesses, plus three of its standard
    errors; ``far below the others``: below half the median accuracy of the
    other networks that are not controls (on the same images). Controls are
    not checked; networks without labelled images read ``no labels``.
    """
    out = {}
    for k, acc in top1.items():
        if k in controls:
            out[k] = "control"
            continue
        if not n.get(k) or not np.isfinite(acc):
            out[k] = "no labels"
            continue
        others = [v for j, v in top1.items() if j != k and j not in controls and np.isfinite(v)]
        if acc <= chance + CHANCE_SE * np.sqrt(chance * (1 - chance) / n[k]):
            out[k] = "near chance"
        elif others and acc < FAR_BELOW * float(np.median(others)):
            out[k] = "far below the others"
        else:
            out[k] = "ok"
    return out


def top1(store: st.EmbeddingStore, block_rows: int = 4096) -> tuple[float, int]:
    """(accuracy of the store's own classifier on its labelled samples, their number)."""
    w, b = store.classifier()
    offset = store.label_offset
    labels = store.labels
    correct = n = 0
    for start, stop in st.sample_chunks(store.n, block_rows):
        y = labels[start:stop]
        known = y >= 0
        pred = np.argmax(np.asarray(store.embeddings[start:stop], np.float64) @ w.T + b, axis=1) + offset
        correct += int(np.sum(pred[known] == y[known]))
        n += int(known.sum())
    return (correct / n if n else float("nan")), n


def describe(stores: dict[str, st.EmbeddingStore], labels: dict[str, str] | None = None, controls=(),
             block_rows: int = 4096) -> pd.DataFrame:
    """The table of :data:`COLUMNS` for matched stores of one split (``controls``: networks marked control)."""
    labels = labels or {}
    rows = []
    for key, s in stores.items():
        a = s.attrs
        pre = a.get("preprocessing") or {}
        size = a.get("input_size")
        acc, n = top1(s, block_rows) if s.has_classifier else (float("nan"), 0)
        method = dict(s.group["classifier"].attrs).get("method") or "" if s.has_classifier else ""
        rows.append({
            "network": key, "label": labels.get(key, key), "handle": a.get("handle", ""),
            "classifier_handle": a.get("classifier_handle", ""), "feature_dim": s.dim,
            "parameters": a.get("parameters"), "input_size": "x".join(str(v) for v in size) if size else "",
            "crop_fraction": pre.get("crop_fraction"), "input_range": pre.get("input_range"),
            "classifier": method, "top1": acc, "n": n, "randomized": bool(a.get("randomized")),
        })
    chance = chance_rate(next(iter(stores.values())).labels) if stores else float("nan")
    checks = accuracy_check({r["network"]: r["top1"] for r in rows}, {r["network"]: r["n"] for r in rows},
                            chance, controls)
    for r in rows:
        r["chance"], r["accuracy_check"] = chance, checks[r["network"]]
    return pd.DataFrame(rows, columns=COLUMNS)
