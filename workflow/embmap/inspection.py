"""Describe any store this workflow writes: arrays, chunking, compression, attributes, value statistics.

``python -m embmap inspect PATH`` prints :func:`describe`; ``--pair`` adds a
map's provenance and fit quality (:func:`describe_map`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr

from . import contract
from . import stores as st
from .fit.methods import few_samples


def _arrays(group: zarr.Group, prefix: str = ""):
    for name, member in sorted(group.members()):
        path = f"{prefix}{name}"
        if isinstance(member, zarr.Group):
            yield from _arrays(member, path + "/")
        else:
            yield path, member


def array_stats(array: zarr.Array, rows: int | None = None) -> dict:
    """min, max, mean, std and NaN/inf counts of a numeric array, read one chunk of rows at a time."""
    if array.dtype.kind not in "fiub" or array.size == 0:
        return {}
    rows = rows or (array.chunks[0] if array.ndim else 1)
    n = 0
    total = total_sq = 0.0
    lo, hi = np.inf, -np.inf
    nan = inf = 0
    if array.ndim == 0:
        blocks = [np.asarray(array[()])]
    else:
        blocks = (np.asarray(array[a:b]) for a, b in st.sample_chunks(array.shape[0], rows))
    for block in blocks:
        x = block.astype(np.float64, copy=False).ravel()
        isnan, isinf = np.isnan(x), np.isinf(x)
        nan += int(isnan.sum())
        inf += int(isinf.sum())
        x = x[~(isnan | isinf)]
        if x.size:
            n += x.size
            total += float(x.sum())
            total_sq += float(np.square(x).sum())
            lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    mean = total / n if n else float("nan")
    var = max(total_sq / n - mean * mean, 0.0) if n else float("nan")
    return {"min": lo if n else float("nan"), "max": hi if n else float("nan"), "mean": mean,
            "std": var ** 0.5, "nan": nan, "inf": inf}


def _codecs(array: zarr.Array) -> str:
    codecs = list(getattr(array, "compressors", ()) or ())
    if not codecs:
        return "none"
    out = []
    for c in codecs:
        d = c.to_dict() if hasattr(c, "to_dict") else {"name": type(c).__name__}
        conf = d.get("configuration", {})
        keep = {k: v for k, v in conf.items() if k in ("cname", "clevel", "shuffle", "level")}
        out.append(d.get("name", "?") + (f"({', '.join(f'{k}={v}' for k, v in keep.items())})" if keep else ""))
    return ", ".join(out)


def _fmt_attr(value) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def describe(path: str | Path, stats: bool = True) -> str:
    """A human-readable account of the Zarr group at ``path`` (complete or not)."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        contract.metadata(path)  # raises, saying what it is instead (missing, a file, Zarr v2, no store)
        raise st.StoreError(f"{path}: not a Zarr store (no zarr.json)")
    g = zarr.open_group(str(path), mode="r")
    attrs = dict(g.attrs)
    lines = [f"store {path}"]
    if attrs.get("complete") is not True:
        what = "no 'complete' attribute" if "complete" not in attrs else f"'complete' is {attrs['complete']!r}"
        lines.append(f"  WARNING: incomplete ({what}, not the boolean true): whatever wrote it did not finish")
    elif "embeddings" in g:  # an embedding store: what the workflow would refuse, if anything
        try:
            contract.check_store(path)
        except st.StoreError as e:
            lines.append(f"  WARNING: the workflow refuses it: {e}")
    lines.append("arrays:")
    for name, a in _arrays(g):
        dims = getattr(a.metadata, "dimension_names", None)
        dims_txt = f" dims={list(dims)}" if dims else ""
        lines.append(f"  {name}: shape={a.shape} dtype={a.dtype} chunks={a.chunks} compressors={_codecs(a)}"
                     f"{dims_txt}")
        if stats:
            s = array_stats(a)
            if s:
                lines.append("    " + " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in s.items()))
            elif a.dtype.kind not in "fiub" and a.size:
                head = st.as_str(a[: min(3, a.shape[0])])
                lines.append(f"    first: {', '.join(map(str, head))}")
        sub = dict(a.attrs)
        for k, v in sub.items():
            lines.append(f"    @{k} = {_fmt_attr(v)}")
    for name, sub in _groups(g):
        for k, v in dict(sub.attrs).items():
            lines.append(f"  {name}/@{k} = {_fmt_attr(v)}")
    lines.append("attributes:")
    for k in sorted(attrs):
        lines.append(f"  {k} = {_fmt_attr(attrs[k])}")
    return "\n".join(lines)


def _groups(group: zarr.Group, prefix: str = ""):
    for name, member in sorted(group.members()):
        if isinstance(member, zarr.Group):
            yield f"{prefix}{name}", member
            yield from _groups(member, f"{prefix}{name}/")


def describe_map(path: str | Path) -> str:
    """Provenance and fit quality of a map store (``maps/{method}/{source}/{target}.zarr``)."""
    g = st.open_group(path, "map store")
    if "weight" not in g or "intercept" not in g:
        kind = ("an embedding store" if "embeddings" in g else "a block store" if "networks" in g.attrs
                else "not a map store")
        raise st.StoreError(f"{path}: is {kind}, not a map store (maps/METHOD/SOURCE/TARGET.zarr, with weight and "
                            "intercept); --pair describes maps only: inspect it without --pair")
    m = st.read_map(path)
    a = m.attrs
    w = np.asarray(m.weight, dtype=np.float64)
    sv = np.linalg.svd(w, compute_uv=False)
    rank = int(np.sum(sv > sv[0] * max(w.shape) * np.finfo(float).eps)) if sv.size else 0
    lines = [
        f"map {path}",
        f"  {a.get('source', '?')} -> {a.get('target', '?')} ({a.get('method', '?')}): "
        f"f_target ≈ f_source @ weight + intercept, weight {w.shape[0]} x {w.shape[1]}",
        f"  fitted on split {a.get('fit_split', '?')!r} of experiment {a.get('experiment', '?')!r}, "
        f"n = {a.get('n', '?')} samples, alpha = {a.get('alpha', '?')}",
        f"  fit R2 (fraction of target variance explained on the fit split) = {a.get('fit_r2', float('nan')):.4f}",
        f"  weight: Frobenius norm {np.linalg.norm(w):.4g}, singular values {sv[0]:.4g} .. {sv[-1]:.4g}, "
        f"numerical rank {rank}",
        f"  intercept: norm {np.linalg.norm(m.intercept):.4g}",
    ]
    for key in ("alphas", "cv_score"):
        if key in a:
            lines.append(f"  {key} = {_fmt_attr(a[key])}")
    few = few_samples(int(a["n"]), w.shape[0]) if isinstance(a.get("n"), int) else None
    if few:
        lines.append(f"  warning: {few}; its evaluation R2 is column r2 of tables/closed_set.csv, beside fit_r2")
    lines.append(f"  blocks: {a.get('blocks', '?')}")
    lines.append(f"  created {a.get('created', '?')} with {_fmt_attr(a.get('versions', {}))}")
    return "\n".join(lines)
