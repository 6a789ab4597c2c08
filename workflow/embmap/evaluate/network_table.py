"""Table 1: what each network is and how well it classifies on its own.

Columns of ``tables/networks.csv`` (one row per network, in the experiment's
order, controls last):

``network, label, handle, classifier_handle, feature_dim, parameters,
input_size, crop_fraction, input_range, classifier, top1, n, randomized``

where ``input_size`` reads ``HxW``, ``classifier`` says how C and b were
obtained (``variables`` or ``least_squares``; a bring-your-own store's
``classifier`` attribute ``method``, empty when it does not say), and ``top1`` is the share of
labelled evaluation images whose argmax of ``C f + b`` (plus the classifier's
``label_offset``) equals the label,
computed chunk by chunk from the store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stores as st

COLUMNS = ["network", "label", "handle", "classifier_handle", "feature_dim", "parameters", "input_size",
           "crop_fraction", "input_range", "classifier", "top1", "n", "randomized"]


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


def describe(stores: dict[str, st.EmbeddingStore], labels: dict[str, str] | None = None,
             block_rows: int = 4096) -> pd.DataFrame:
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
    return pd.DataFrame(rows, columns=COLUMNS)
