"""Per-fold maps of the pairs protocols (open-set verification and identification).

For fold k of a protocol, the map A -> B is fitted on the other folds only,
from source features of the first image of each fitting pair to target
features of the second (the paper's eq. 17). The work is organised per
source network (:class:`SourceFolds`): the centred blocks ``S_AA`` and
``S_AB`` (all targets side by side) of every fold are computed once from the
fold's rows; the training blocks of fold k are the whole minus fold k, exactly
(:meth:`SourceFolds.training`), so no fold costs a pass over the features and
memory holds one source's blocks at a time.

Maps come from each method's ``from_part`` (:mod:`embmap.fit.methods`):
``ridge`` with one penalty is one linear solve of ``S_t,AA + alpha I`` for all
targets at once; ``lstsq`` one ``eigh``; ``procrustes`` one SVD per target.

With a list of penalties, the penalty of outer fold k is chosen per target by
inner cross-validation over the other folds: each other fold j is left out
in turn, the map is fitted on the rest and scored on fold j
(:data:`embmap.fit.ridge.CV_METRIC`), and the map is then fitted on all
other folds with the best penalty (ties to the larger); fold k itself is
never seen. The training set of (outer k, inner j) is that of (outer j,
inner k), so :func:`inner_cv` factors each unordered pair of folds once
(one ``eigh`` serving every penalty and target) and scores both held-out
folds from their rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from . import FitError
from .ridge import alphas_of, choose_alpha, held_out_rss


def sequential(fn, items) -> list:
    return [fn(i) for i in items]


@contextmanager
def workers(threads: int | None):
    """A ``map`` over independent tasks on ``threads`` threads, BLAS on one thread each (results in order).

    Small factorisations (``eigh`` and solves of a few hundred dimensions) gain
    little from a threaded BLAS and lose much when the cores are shared; one
    task per core does not. ``threads=None`` runs the tasks one after another
    with BLAS as it is.
    """
    if not threads:
        yield sequential
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), ThreadPoolExecutor(max(1, int(threads))) as pool:
        yield lambda fn, items: list(pool.map(fn, items))


@dataclass
class Part:
    """Centred cross products of one set of fitting pairs: source ``a`` against all targets side by side."""

    n: int
    ma: np.ndarray   # [d_a] source mean
    mb: np.ndarray   # [D] target means
    saa: np.ndarray  # [d_a, d_a]
    sab: np.ndarray  # [d_a, D]
    sbb: np.ndarray  # [D] sums of squared deviations of the targets' features


def part_of(x: np.ndarray, y: np.ndarray, precision: str = "float64") -> Part | None:
    """The centred blocks of rows ``x`` [n, d_a] (source) and ``y`` [n, D] (targets); None without rows."""
    if len(x) == 0:
        return None
    ma, mb = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - ma, y - mb
    sbb = np.einsum("ij,ij->j", yc, yc)
    if precision == "float32":
        xc, yc = xc.astype(np.float32), yc.astype(np.float32)
    elif precision != "float64":
        raise FitError(f"precision {precision!r}: use float64 or float32")
    saa = np.asarray(xc.T @ xc, dtype=np.float64)
    sab = np.asarray(xc.T @ yc, dtype=np.float64)
    return Part(len(x), ma, mb, saa, sab, sbb)


def pool_parts(parts: list[Part]) -> Part:
    """Blocks of the union of disjoint sets: ``sum S_k + sum n_k (m_k - m)(m_k - m)^T``."""
    n = sum(p.n for p in parts)
    ma = sum(p.n * p.ma for p in parts) / n
    mb = sum(p.n * p.mb for p in parts) / n
    saa = sum(p.saa for p in parts)
    sab = sum(p.sab for p in parts)
    sbb = sum(p.sbb for p in parts)
    for p in parts:
        da, db = p.ma - ma, p.mb - mb
        saa = saa + p.n * np.outer(da, da)
        sab = sab + p.n * np.outer(da, db)
        sbb = sbb + p.n * db * db
    return Part(n, ma, mb, saa, sab, sbb)


class SourceFolds:
    """Per-fold blocks of one source's fitting features against every target's.

    Parameters
    ----------
    x : float [n_fit, d_a]
        Source features of the first image of each fitting pair.
    ys : dict target -> float [n_fit, d_b]
        Target features of the second image of each fitting pair (copied into
        one float64 array, targets side by side).
    fold : int [n_fit]
        The fold of each fitting pair (0-based).
    run : a map over the folds' blocks (:func:`workers`); default one after another
    """

    def __init__(self, source: str, x: np.ndarray, ys: dict, fold: np.ndarray, n_folds: int,
                 precision: str = "float64", run=None):
        self.source, self.targets = source, list(ys)
        self.n_folds = n_folds
        self.slices, start = {}, 0
        for b, yb in ys.items():
            self.slices[b] = slice(start, start + yb.shape[1])
            start += yb.shape[1]
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.empty((len(self.x), start))
        for b, yb in ys.items():
            self.y[:, self.slices[b]] = yb
        self.fold = np.asarray(fold)
        self.rows = [np.flatnonzero(self.fold == j) for j in range(n_folds)]
        self.parts = (run or sequential)(lambda r: part_of(self.x[r], self.y[r], precision), self.rows)
        present = [p for p in self.parts if p is not None]
        if not present:
            raise FitError(f"network {source!r}: no fitting pairs")
        self.whole = pool_parts(present)

    def others(self, k: int) -> list[int]:
        """The folds other than ``k`` that hold fitting pairs."""
        return [j for j, p in enumerate(self.parts) if j != k and p is not None]

    def n_fit(self, k: int) -> int:
        return self.whole.n - (self.parts[k].n if self.parts[k] is not None else 0)

    def training(self, *held_out: int) -> Part:
        """Blocks of every fold but ``held_out``, exactly: with W the whole, t the rest and d = m - m_W,
        ``S_W = S_t + sum_s S_s + n_t d_t d_t' + sum_s n_s d_s d_s'`` over the held-out folds s, solved for
        ``S_t`` (one pass over each array and one low-rank product for the means)."""
        out = [self.parts[j] for j in held_out if self.parts[j] is not None]
        if not out:
            return self.whole
        w = self.whole
        nt = w.n - sum(p.n for p in out)
        ma = (w.n * w.ma - sum(p.n * p.ma for p in out)) / nt
        mb = (w.n * w.mb - sum(p.n * p.mb for p in out)) / nt
        da = np.array([p.ma - w.ma for p in out] + [ma - w.ma])
        db = np.array([p.mb - w.mb for p in out] + [mb - w.mb])
        weight = np.array([float(p.n) for p in out] + [float(nt)])
        saa, sab, sbb = w.saa.copy(), w.sab.copy(), w.sbb.copy()
        for p in out:
            saa -= p.saa
            sab -= p.sab
            sbb -= p.sbb
        saa -= da.T @ (weight[:, None] * da)
        sab -= da.T @ (weight[:, None] * db)
        sbb -= weight @ (db * db)
        return Part(nt, ma, mb, saa, sab, sbb)

    def weights(self, k: int, method: str, chosen: dict | None = None, mapping: dict | None = None, **keys
                ) -> tuple[np.ndarray, np.ndarray, dict]:
        """Map of fold ``k`` (fitted on every other fold) to all targets side by side.

        ``method`` is a map method (:mod:`embmap.fit.methods`), ``mapping`` (or
        keywords such as ``alpha=``) the experiment's mapping block, ``chosen``
        this fold's choice of the method's ``select`` (ridge: the penalty per
        target of :func:`inner_cv`). Returns (weight [d_a, D], intercept [D],
        per-target penalty: ridge's alpha, 0 for lstsq, ``nan`` for procrustes).
        """
        from . import methods as mt

        m = mt.get(method)
        n_fit = self.n_fit(k)
        if n_fit < 2:
            raise FitError(f"fold {k + 1}: {n_fit} fitting pair(s) in the other folds; at least 2 are needed")
        t = self.training(k)
        w, penalty = m.from_part(t, self.slices, self.source, mt.options(mapping, **keys), chosen)
        return w, t.mb - t.ma @ w, penalty


def check_features(rows: dict, methods: list, options: dict) -> None:
    """Each method's check of every network's fitting rows ({network: float [n, d]}), before any fold is fitted."""
    checks = [m.check_features for m in methods if m.check_features is not None]
    for name, x in rows.items() if checks else ():
        x = np.asarray(x, dtype=np.float64)
        for check in checks:
            check(name, ((x - x.mean(0)) ** 2).sum(0), x.mean(0), len(x), options)


def fold_maps(sf: SourceFolds, method, options: dict, run, fn, log=None) -> list:
    """``fn(k, weight, intercept, penalty)`` for every fold ``k``, with the map of ``method``
    (:class:`embmap.fit.methods.Method`) fitted on the other folds; the method's ``select`` runs first
    (ridge: inner cross-validation of an alpha list), and ``log`` is told what it chose. Results in fold
    order, computed by ``run`` (:func:`workers`)."""
    chosen = method.select(sf, options, run) if method.select is not None else None
    if log and chosen:
        for k in range(sf.n_folds):
            log(f"fold {k + 1}, {method.name}: chosen by inner cross-validation: "
                + ", ".join(f"{sf.source}->{b} {chosen[k][b]:g}" for b in sf.targets))

    def one(k):
        w, c, penalty = sf.weights(k, method.name, chosen[k] if chosen else None, options)
        return fn(k, w, c, penalty)

    return run(one, range(sf.n_folds))


def inner_cv(sf: SourceFolds, alphas: list[float], run=None) -> dict[int, dict[str, float]]:
    """The penalty chosen for every outer fold and target by inner cross-validation over the other folds.

    Score of a penalty for (outer k, target b): ``1 - sum_j RSS_j / sum_j TSS_j``
    over the other folds j, where ``RSS_j`` is the held-out squared error on
    fold j of the map fitted on every fold but k and j, and ``TSS_j`` fold j's
    squared deviation from its own mean. Each unordered pair {k, j} is
    factored once; its held-out terms come from the rows of k and of j.
    ``run`` maps a function over the pairs (:func:`workers`); the sums are
    taken in a fixed order whatever it is.
    """
    alphas = alphas_of(alphas)
    folds = [j for j, p in enumerate(sf.parts) if p is not None]
    for k in range(sf.n_folds):
        if len(sf.others(k)) < 2:
            raise FitError(f"fold {k + 1}: choosing alpha among {alphas} by inner cross-validation needs at least "
                           f"two other folds with fitting pairs, there are {len(sf.others(k))}")
    pairs = [(k, j) for i, k in enumerate(folds) for j in folds[i + 1:]]

    def factor(pair):
        k, j = pair
        t = sf.training(k, j)
        if t.n == 0:
            return {}
        w, v = np.linalg.eigh(t.saa)
        p = v.T @ t.sab
        pps = {b: p[:, sl] @ p[:, sl].T for b, sl in sf.slices.items()}
        # held-out fold j scores outer fold k, and held-out k scores outer j
        return {outer: _held_out(sf, held, t, w, v, p, pps, alphas) for outer, held in ((k, j), (j, k))}

    rss = {k: {b: np.zeros(len(alphas)) for b in sf.targets} for k in range(sf.n_folds)}
    tss = {k: dict.fromkeys(sf.targets, 0.0) for k in range(sf.n_folds)}
    for terms in (run or sequential)(factor, pairs):
        for outer, (r, t) in terms.items():
            for b in sf.targets:
                rss[outer][b] += r[b]
                tss[outer][b] += t[b]
    chosen = {}
    for k in range(sf.n_folds):
        chosen[k] = {}
        for b in sf.targets:
            scores = 1.0 - rss[k][b] / tss[k][b] if tss[k][b] > 0 else np.full(len(alphas), np.nan)
            try:
                chosen[k][b] = choose_alpha(alphas, scores)
            except FitError as e:
                raise FitError(f"fold {k + 1}, {sf.source} -> {b}: {e}") from None
    return chosen


def _held_out(sf: SourceFolds, h: int, t: Part, w, v, p, pps, alphas) -> tuple[dict, dict]:
    """Fold ``h``'s held-out squared error per target and penalty under the maps fitted on ``t`` (eigenbasis
    ``w``, ``v``), and its squared deviation from its own mean per target."""
    rows = sf.rows[h]
    fh = sf.parts[h]
    z = (sf.x[rows] - fh.ma) @ v          # held-out source rows in the eigenbasis, centred on the fold
    tm = z.T @ z                           # v' F_aa v
    g = z.T @ (sf.y[rows] - fh.mb)         # v' F_ab, all targets
    u = (fh.ma - t.ma) @ v                 # held-out minus training source mean, in the eigenbasis
    dy = fh.mb - t.mb
    rss, tss = {}, {}
    for b, sl in sf.slices.items():
        pb, pp = p[:, sl], pps[b]
        tpp = tm * pp
        pr = np.einsum("ij,ij->i", pb, g[:, sl])
        py = pb @ dy[sl]
        tk = float(fh.sbb[sl].sum())
        tss[b] = tk
        rss[b] = held_out_rss(w, alphas, tk, pr, tpp, pp, u, py, float(dy[sl] @ dy[sl]), fh.n)
    return rss, tss
