"""A shared space for all networks: one map per network into it and one out of it, against the direct maps.

N networks have N (N - 1) direct maps; a shared reference space needs 2 N
(an encoder into it and a decoder out of it per network), and A -> shared -> B
replaces the direct A -> B. This module fits that space from the pass's blocks
alone (no second pass, no samples) and measures the shared route beside the
direct ridge map through B's classifier on the evaluation split.

The space (docs/methods.md, "A shared space"): the top ``k`` principal
directions of the concatenated, centred features, each network scaled to the
same total variance (PCA of the concatenation with block weights, as multiple
factor analysis weights its tables), so that a wide or loud network does not
own the space. With ``S_AB`` the blocks, ``t_A = tr S_AA``, ``t = mean_A t_A``
and ``s_A = sqrt(t / t_A)``:

    C[A, B] = s_A s_B S_AB                    (D x D, D = sum_A d_A)
    C U = U diag(lambda)                      (top k eigenpairs, lambda descending)
    z = sum_A (x_A - mean_A) W_A,   W_A = s_A U_A     (U_A: A's rows of U)

so ``S_zz = U^T C U = diag(lambda)`` and ``S_Az = sum_B S_AB W_B = U_A diag(lambda) / s_A``
(from ``C U = U diag(lambda)``: no product over the other networks' blocks).
Maps are ridge maps with unpenalised intercepts, as the direct ones:

    encoder  E_A = (S_AA + alpha I)^-1 S_Az,            intercept -mean_A E_A   (z has mean 0)
    decoder  D_B = (S_zz + alpha I)^-1 S_zB = diag(lambda / (lambda + alpha)) U_B^T / s_B,   intercept mean_B

and A -> shared -> B is ``x -> (x E_A - mean_A E_A) D_B + mean_B``, the linear map
``E_A D_B``. With k at the rank of C and alpha -> 0 it is the least-squares map
``S_AA^-1 S_AB`` (``S_Az S_zz^-1 S_zB = S_AB`` when z spans every feature), so the
shared route loses nothing; a smaller k keeps what the networks' largest common
and own directions hold. Cost: one ``eigh`` of the D x D joint matrix (the top k
only) and one of each S_AA: O(D^3 + sum_A d_A^3), against N solves of S_AA
and N (N - 1) products for the direct maps; parameters 2 k D + N k + D against
sum_{A != B} (d_A d_B + d_B).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import stores as st
from ..fit import FitError
from ..fit.linear import LinearMap, fit_r2
from .closed_set import Spread, feature_chunks, predict, r2, setup
from .common import NATIVE

COLUMNS = ["source", "target", "shared_dim", "accuracy_shared", "accuracy_shared_low", "accuracy_shared_high",
           "accuracy_direct", "accuracy_direct_low", "accuracy_direct_high", "diff", "diff_low", "diff_high",
           "r2_shared", "r2_direct", "fit_r2_shared", "fit_r2_direct", "encoder_fit_r2", "source_accuracy",
           "target_accuracy", "parameters_shared", "parameters_direct", "alpha", "n"]
SUMMARY_COLUMNS = ["networks", "pairs", "mean_diff", "mean_diff_low", "mean_diff_high", "worst_diff"]


@dataclass
class SharedSpace:
    """The fitted space: ``names`` and ``dims`` of the networks, ``k`` its dimension, ``eigenvalues`` [k] (the
    variance of z along each axis, ``S_zz``), ``explained`` (their share of ``tr C``), each network's ``scale``
    s_A, ``encoders`` and ``decoders`` {network: LinearMap}, ``alpha`` and the fit's wall time ``seconds``."""

    names: list
    dims: list
    k: int
    eigenvalues: np.ndarray
    explained: float
    scale: dict
    encoders: dict
    decoders: dict
    alpha: float
    seconds: float

    def route(self, a: str, b: str) -> LinearMap:
        """A -> shared -> B as one linear map (``E_A D_B``, intercept ``c_A D_B + mean_B``)."""
        e, d = self.encoders[a], self.decoders[b]
        return LinearMap(e.weight @ d.weight, e.intercept @ d.weight + d.intercept,
                         {"method": "shared", "via": "shared space", "k": self.k, "alpha": self.alpha})

    @property
    def parameters(self) -> int:
        """Weights and intercepts of the 2 N maps: ``sum_A (d_A k + k) + sum_B (k d_B + d_B)``."""
        return int(sum(e.weight.size + e.intercept.size for e in self.encoders.values())
                   + sum(d.weight.size + d.intercept.size for d in self.decoders.values()))


def shared_dim(dim, dims: list) -> int:
    """``shared_space.dim`` (None: the smallest network's dimension), refused above the joint dimension."""
    if dim is None:
        return int(min(dims))
    if int(dim) > sum(dims):
        raise FitError(f"shared_space.dim: {dim} is more than the networks' {sum(dims)} features together")
    return int(dim)


def fit(blocks, dim=None, alpha: float = 1.0) -> SharedSpace:
    """The shared space of ``blocks`` (:class:`embmap.fit.blocks.Blocks`) of dimension ``dim`` (None: the smallest
    network's) with ridge penalty ``alpha`` for its encoders and decoders (module docstring). Memory: the D x D
    joint matrix (8 D^2 bytes)."""
    from scipy.linalg import eigh

    start = time.perf_counter()
    names, dims = list(blocks.names), [int(d) for d in blocks.dims]
    k = shared_dim(dim, dims)
    grams = {a: blocks.gram(a, a) for a in names}
    traces = {a: float(np.trace(g)) for a, g in grams.items()}
    flat = [a for a, t in traces.items() if not t > 0]
    if flat:
        raise FitError(f"network {flat[0]!r}: its features do not vary on the fit split (tr S_AA = 0); "
                       "the shared space weights every network by 1 / sqrt(tr S_AA)")
    mean_trace = float(np.mean(list(traces.values())))
    scale = {a: float(np.sqrt(mean_trace / traces[a])) for a in names}
    off = np.concatenate([[0], np.cumsum(dims)]).astype(int)
    sl = {a: slice(int(off[i]), int(off[i + 1])) for i, a in enumerate(names)}
    joint = np.empty((off[-1], off[-1]))
    for i, a in enumerate(names):
        for b in names[i:]:
            block = scale[a] * scale[b] * (grams[a] if a == b else blocks.gram(a, b))
            joint[sl[a], sl[b]] = block
            joint[sl[b], sl[a]] = block.T
    total = float(np.trace(joint))
    lam, u = eigh(joint, subset_by_index=[off[-1] - k, off[-1] - 1])
    lam, u = np.maximum(lam[::-1], 0.0), u[:, ::-1]
    u = u * np.where(u[np.abs(u).argmax(axis=0), np.arange(k)] < 0, -1.0, 1.0)  # a sign per axis, reproducibly
    del joint
    encoders, decoders = {}, {}
    for a in names:
        s_az = u[sl[a]] * lam / scale[a]  # S_Az = U_A diag(lambda) / s_A
        w, v = np.linalg.eigh(grams[a])
        if np.any(w + alpha <= 1e-12 * max(float(w.max()), 1.0)):
            raise FitError(f"network {a!r}: its Gram matrix is singular and shared_space alpha is {alpha}; "
                           "use alpha > 0")
        enc = v @ ((v.T @ s_az) / (w + alpha)[:, None])
        tr_zz = float(lam.sum())
        r2_enc = 1.0 - (tr_zz - 2.0 * float(np.sum(enc * s_az)) + float(np.sum(enc * (grams[a] @ enc)))) / tr_zz \
            if tr_zz > 0 else np.nan
        encoders[a] = LinearMap(enc, -blocks.means[a] @ enc, {"method": "shared_encoder", "k": k, "alpha": alpha,
                                                               "fit_r2": float(r2_enc)})
        dec = (lam / (lam + alpha))[:, None] * u[sl[a]].T / scale[a]
        decoders[a] = LinearMap(dec, np.asarray(blocks.means[a], dtype=np.float64).copy(),
                                {"method": "shared_decoder", "k": k, "alpha": alpha})
    return SharedSpace(names, dims, k, lam, float(lam.sum() / total) if total > 0 else np.nan, scale, encoders,
                       decoders, float(alpha), time.perf_counter() - start)


def direct_fit_seconds(blocks, alpha: float) -> float:
    """The wall time of fitting every direct ridge map from ``blocks`` at ``alpha`` (timed only; the table reads
    the stored maps)."""
    from ..fit import ridge

    start = time.perf_counter()
    for a in blocks.names:
        ridge.fit_maps(blocks, a, [b for b in blocks.names if b != a], float(alpha))
    return time.perf_counter() - start


def direct_parameters(dims: list) -> int:
    """Weights and intercepts of the N (N - 1) direct maps: ``sum_{A != B} (d_A d_B + d_B)``."""
    return int(sum(da * db + db for i, da in enumerate(dims) for j, db in enumerate(dims) if i != j))


def evaluate(stores: dict[str, st.EmbeddingStore], direct: dict[tuple[str, str], LinearMap], space: SharedSpace,
             blocks=None, block_rows: int = 4096, intervals: dict | None = None,
             controls=()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A -> shared -> B beside the direct ridge map A -> B for every ordered pair, in one pass over the evaluation
    ``stores`` (matched, with classifiers; their order is the table's). ``direct``: {(source, target): ridge map};
    ``blocks``: the fit blocks, for the routes' fit-split R2 (empty without). Returns the table (:data:`COLUMNS`)
    and its :func:`summary` (every pair, and the pairs without ``controls`` when there are any)."""
    from .intervals import bootstrap_of

    e = setup(stores, {"ridge": direct})
    names, labels, known, cls, offset = e.names, e.labels, e.known, e.cls, e.offset
    missing = [a for a in names if a not in space.encoders]
    if missing:
        raise KeyError(f"network {missing[0]!r} is not in the shared space (fitted for {', '.join(space.names)})")
    pairs = [(a, b) for a in names for b in names if a != b]
    keys = [(a, a, NATIVE) for a in names] + [(a, b, m) for a, b in pairs for m in ("shared", "direct")]
    right = {k: [] for k in keys}
    sse = dict.fromkeys(keys, 0.0)
    spread = {b: Spread(stores[b].dim) for b in names}
    for start, stop, feats in feature_chunks(stores, block_rows):
        y, mask = labels[start:stop], known[start:stop]
        for b in names:
            spread[b].add(feats[b])
            right[(b, b, NATIVE)].append((predict(feats[b], cls[b], offset[b]) == y) & mask)
        for a in names:
            z = space.encoders[a](feats[a])  # shared by every target
            for b in names:
                if b == a:
                    continue
                for m, out in (("shared", space.decoders[b](z)), ("direct", e.maps["ridge"][(a, b)](feats[a]))):
                    right[(a, b, m)].append((predict(out, cls[b], offset[b]) == y) & mask)
                    sse[(a, b, m)] += float(np.sum((out - feats[b]) ** 2))
    boot = bootstrap_of(intervals, len(labels))
    values = np.stack([np.concatenate(right[k]) for k in keys])
    rate, point = boot.means(values, known), boot.point(values, known)
    low, high = boot.interval(rate)
    at = {k: i for i, k in enumerate(keys)}
    sh, di = [at[(a, b, "shared")] for a, b in pairs], [at[(a, b, "direct")] for a, b in pairs]
    diffs = rate[:, sh] - rate[:, di]  # [resamples, pairs]
    d_low, d_high = boot.interval(diffs)
    rows = []
    for j, (a, b) in enumerate(pairs):
        i_s, i_d = sh[j], di[j]
        route = space.route(a, b)
        rows.append({
            "source": a, "target": b, "shared_dim": space.k,
            "accuracy_shared": point[i_s], "accuracy_shared_low": low[i_s], "accuracy_shared_high": high[i_s],
            "accuracy_direct": point[i_d], "accuracy_direct_low": low[i_d], "accuracy_direct_high": high[i_d],
            "diff": point[i_s] - point[i_d], "diff_low": d_low[j], "diff_high": d_high[j],
            "r2_shared": r2(sse[(a, b, "shared")], spread[b].total),
            "r2_direct": r2(sse[(a, b, "direct")], spread[b].total),
            "fit_r2_shared": (fit_r2(route.weight, blocks.gram(a, a), blocks.gram(a, b),
                                     float(np.trace(blocks.gram(b, b)))) if blocks is not None else np.nan),
            "fit_r2_direct": float(e.maps["ridge"][(a, b)].attrs.get("fit_r2", np.nan)),
            "encoder_fit_r2": float(space.encoders[a].attrs.get("fit_r2", np.nan)),
            "source_accuracy": point[at[(a, a, NATIVE)]], "target_accuracy": point[at[(b, b, NATIVE)]],
            "parameters_shared": int(space.encoders[a].weight.size + space.encoders[a].intercept.size
                                     + space.decoders[b].weight.size + space.decoders[b].intercept.size),
            "parameters_direct": int(e.maps["ridge"][(a, b)].weight.size + e.maps["ridge"][(a, b)].intercept.size),
            "alpha": space.alpha, "n": int(known.sum()),
        })
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table, summary(table, diffs, boot, controls)


def summary(table: pd.DataFrame, diffs: np.ndarray | None = None, boot=None, controls=()) -> pd.DataFrame:
    """``mean_diff``: the mean over ordered pairs of shared - direct accuracy, with its interval when the resampled
    ``diffs`` [resamples, pairs in the table's order] and ``boot`` are given, and the worst pair's; over every pair
    (``networks`` = ``all``) and over the pairs without ``controls``."""
    scopes = [("all", np.ones(len(table), dtype=bool))]
    if len(controls):
        scopes.append(("without controls", ~(table.source.isin(controls) | table.target.isin(controls)).to_numpy()))
    rows = []
    for scope, keep in scopes:
        if not keep.any():
            continue
        low = high = np.nan
        if diffs is not None and boot is not None:
            low, high = boot.interval(diffs[:, keep].mean(axis=1))
        sub = table[keep]
        rows.append({"networks": scope, "pairs": int(keep.sum()), "mean_diff": float(sub["diff"].mean()),
                     "mean_diff_low": float(low), "mean_diff_high": float(high),
                     "worst_diff": float(sub["diff"].min())})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def penalty(options: dict | None, mapping: dict, direct: dict) -> float:
    """The encoders' and decoders' ridge penalty: ``shared_space.alpha``, else ``mapping.alpha`` when it is one
    number, else (an alpha list, cross-validated per pair) the median of the direct ridge maps' chosen alphas."""
    chosen = (options or {}).get("alpha")
    if chosen is not None:
        return float(chosen)
    alpha = mapping.get("alpha", 1.0)
    if not isinstance(alpha, (list, tuple)):
        return float(alpha)
    return float(np.median([float(m.attrs["alpha"]) for m in direct.values()]))
