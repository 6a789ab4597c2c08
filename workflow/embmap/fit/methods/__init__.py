"""Map methods: one module per method, found through :data:`METHODS`.

Every method maps ``f_B ≈ f_A @ W + c`` with ``c = mean_B - mean_A @ W`` (the
intercept is never penalised or rotated); only ``W`` differs. Each module
declares ``METHOD = Method(...)``: its name (the value in ``mapping.methods``
and the tables' ``method`` column), the ``mapping`` keys it reads, and how it
fits

- from the pass's centred blocks (:class:`embmap.fit.blocks.Blocks`): the maps
  of one source to its targets, or of every ordered pair at once;
- from the per-fold blocks of the pairs protocols (:class:`embmap.fit.folds.Part`,
  one source against all targets side by side), with an optional choice made
  per fold first (ridge's inner cross-validation);
- on other blocks with the choices of the whole split's maps (the sample-efficiency
  prefixes: ridge keeps each pair's penalty).

- :mod:`.ridge`: ``ridge``, the paper's eq. 5 (numerics in :mod:`embmap.fit.ridge`);
- :mod:`.lstsq`: ``lstsq``, least squares, minimum norm where ``S_AA`` is singular;
- :mod:`.procrustes`: ``procrustes``, the scaled orthogonal map after centring.

Maps of every method are stored at ``maps/METHOD/SOURCE/TARGET.zarr``. A method
with ``jobs="source"`` is fitted by one job per source network (rule
``fit_maps``, output ``maps/METHOD/SOURCE/``); with ``jobs="pairs"`` by one job
for all ordered pairs (rule ``fit_method_maps``, output ``maps/METHOD/``), for
methods that share work between A -> B and B -> A.

To add a method: write ``NAME.py`` here with its numerics and a ``METHOD``,
list it in ``_methods`` below, add its name to ``mapping.methods`` in the
schema (and any option it reads to ``$defs/mapping``), and test it. Nothing
else names methods: the plan, the rules, the steps, the evaluations and the
figures take them from here.

Standard library only at import time (the Snakefile imports the registry):
method modules import numpy inside their functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from .. import FitError

SOURCE_JOBS, PAIR_JOBS = "source", "pairs"


def _per_source(method: "Method"):
    """Every ordered pair from :attr:`Method.from_blocks` per source, sources side by side on the job's threads
    (:func:`embmap.engine.side_by_side`: each on one BLAS thread, so no map depends on the thread count)."""
    def pairs(blocks, names: list[str], options: dict) -> Iterator:
        from ...engine import side_by_side

        def one(a):
            return a, method.from_blocks(blocks, a, [b for b in names if b != a], options)

        for a, fitted in side_by_side(one, names):
            yield from (((a, b), m) for b, m in fitted.items())

    return pairs


@dataclass(frozen=True)
class Method:
    """A map method (a value of ``mapping.methods``).

    Attributes
    ----------
    name : str
    summary : str
        One line: what the map is (docs, logs).
    options : tuple of str
        The ``mapping`` keys it reads.
    jobs : "source" or "pairs"
        One fit job per source network, or one for every ordered pair.
    from_blocks : callable
        ``from_blocks(blocks, source, targets, options)`` -> {target: LinearMap}. ``options`` holds the
        ``mapping`` keys of :attr:`options` only (the fit jobs pass no others). Each map's ``attrs`` must hold
        ``source``, ``target``, ``method`` (this name), ``n`` (fit samples) and ``fit_r2``
        (:func:`embmap.fit.linear.fit_r2`): the stores, logs and tables read them; ``alpha`` (the tables'
        penalty column) and the method's own figures (``rank``, ...) as it has them.
    from_part : callable
        ``from_part(part, slices, source, options, chosen)`` -> (weight [d_a, D], {target: penalty}):
        the map of one fold's training blocks (:class:`embmap.fit.folds.Part`, targets side by side at
        ``slices``); ``chosen`` is this fold's entry of :attr:`select` (or None). ``penalty`` fills the
        fold tables' ``alpha`` column (nan where the method has none).
    pairs : callable, optional
        ``pairs(blocks, names, options)`` -> iterator of ((source, target), LinearMap) over every ordered
        pair, one map at a time; default :attr:`from_blocks` per source.
    like : callable, optional
        ``like(blocks, names, options, full)`` -> {(source, target): LinearMap}: maps on other blocks (the
        sample-size prefixes) for the pairs of the whole split's maps ``full`` (every ordered pair of ``names``,
        or every layer node into every other network), with the choices those made; default :attr:`pairs`.
    like_samples : callable, optional
        ``like_samples(rows, names, options, full)`` -> {(source, target): LinearMap} or None: the maps of
        :attr:`like` from the m samples themselves (``rows``: {network: float64 [m, d]}), in the
        m-dimensional sample space, for prefixes of fewer samples than features (cost ``m^2 d``, not
        ``d^3``); None where it has no such route for these choices (the blocks' route then runs).
    select : callable, optional
        ``select(source_folds, options, run)`` -> {fold: choice} or None, before the folds are fitted.
    check_features : callable, optional
        ``check_features(name, sumsq, mean, n, options)`` raises :class:`FitError` for a network the method
        cannot map as configured (before any fit).
    warning : callable, optional
        ``warning(map)`` -> str or None: what the job's log must say about a fitted map.
    describe : callable, optional
        ``describe(map)`` -> str: the method's own figures for the job's log line (beside fit R^2).
    """

    name: str
    summary: str
    options: tuple
    jobs: str
    from_blocks: Callable
    from_part: Callable
    pairs: Callable | None = None
    like: Callable | None = None
    like_samples: Callable | None = None
    select: Callable | None = None
    check_features: Callable | None = None
    warning: Callable | None = None
    describe: Callable | None = None

    def fit_pairs(self, blocks, names: list[str], options: dict) -> Iterator:
        """Every ordered pair's map: ``((source, target), LinearMap)``, one at a time."""
        return (self.pairs or _per_source(self))(blocks, list(names), options)

    def fit_like(self, blocks, names: list[str], options: dict, full: dict) -> dict:
        """Every ordered pair's map on ``blocks`` with the choices of the maps ``full`` ({(a, b): LinearMap})."""
        if self.like is not None:
            return self.like(blocks, list(names), options, full)
        return dict(self.fit_pairs(blocks, names, options))


SAMPLES_PER_FEATURE = 2  # below this many fit samples per source feature, every method's log warns


def few_samples(n: int, d: int) -> str | None:
    """What a job's log must say when ``n`` fit samples are few for ``d`` source features (any method): with
    ``n < 2 d`` a map has nearly as many free weights per target feature as samples, so its fit R^2 overstates
    what it carries (for least squares by about ``d / n`` of the residual variance)."""
    if n >= SAMPLES_PER_FEATURE * d:
        return None
    return (f"{n} fit samples for {d} source features (fewer than {SAMPLES_PER_FEATURE} per feature): the map "
            "can fit the fit split without carrying anything to new images; read its evaluation R2 and accuracy, "
            "not its fit R2, and give it more images (mapping.sample_sizes shows how many it needs)")


def _methods() -> dict[str, Method]:
    from . import lstsq, procrustes, ridge

    # a new method joins this tuple; its order is the order of the tables' rows
    return {module.METHOD.name: module.METHOD for module in (ridge, lstsq, procrustes)}


METHODS: dict[str, Method] = _methods()


def get(name: str) -> Method:
    """The method of a ``mapping.methods`` value; an unknown name is a :class:`FitError` listing the known."""
    try:
        return METHODS[name]
    except KeyError:
        raise FitError(f"mapping.methods: unknown method {name!r}; use any of {', '.join(METHODS)}") from None


def fitted(names) -> list[Method]:
    """The methods of a ``mapping.methods`` list, in the registry's order (the order of the tables' rows)."""
    for name in names:
        get(name)
    return [m for name, m in METHODS.items() if name in names]


def options(mapping: dict | None = None, **keys) -> dict:
    """A ``mapping`` block with every default of the schema filled in (``keys`` override it)."""
    from ... import config

    return config.defaults("mapping", {**(mapping or {}), **keys})


def fit_maps(blocks, source: str, targets: list[str], method: str = "ridge", mapping: dict | None = None,
             **keys) -> dict:
    """Maps of ``method`` from ``source`` to each target ({target: LinearMap}), one factorisation of the
    source's blocks; ``mapping`` (or keywords such as ``alpha=``, ``scale=``) the experiment's mapping block."""
    return get(method).from_blocks(blocks, source, list(targets), options(mapping, **keys))


def fit_pairs(blocks, names: list[str], method: str = "ridge", mapping: dict | None = None, **keys) -> Iterator:
    """Every ordered pair's map of ``method``: ``((source, target), LinearMap)``, one at a time."""
    return get(method).fit_pairs(blocks, list(names), options(mapping, **keys))


__all__ = ["METHODS", "Method", "PAIR_JOBS", "SAMPLES_PER_FEATURE", "SOURCE_JOBS", "few_samples", "fit_maps",
           "fit_pairs", "fitted", "get", "options"]
