"""``mutual_knn``: mutual k-nearest-neighbour alignment (Huh et al. 2024, platonic-rep's ``mutual_knn``), on
samples of the evaluation split.

Each network's rows are L2-normalised and compared by cosine similarity; ``N_A(i)`` are the ``k =
similarity.knn_k`` samples most similar to sample ``i`` in network A, ``i`` itself excluded (ties to the
lower row). The index is the mean over samples of ``|N_A(i) & N_B(i)| / k``: 1 when every sample has the
same neighbours in both spaces (e.g. spaces equal up to rotation and scale), and ``k / (n - 1)`` on average
for unrelated spaces (``N_B(i)`` is then a uniformly random k-subset of the other ``n - 1`` samples), its
``chance`` in the table; ``chance_q95`` is the 95th percentile of a seeded permutation null
(:func:`embmap.evaluate.neighbours.null`). Local where CKA is global: it asks whether the same images are
close, not whether the whole geometry matches. Graphs in chunks (:mod:`embmap.evaluate.neighbours`).
"""

from __future__ import annotations

from . import EVAL, SAMPLES, Index


def value(pair, options: dict) -> float:
    from .. import neighbours

    return neighbours.mutual(*pair.knn(options["knn_k"]))


def chance(pair, options: dict) -> tuple[float, float]:
    import numpy as np

    from .. import neighbours

    a, b = pair.knn(options["knn_k"])
    q95 = float("nan")
    if options["knn_permutations"]:
        q95 = float(np.quantile(neighbours.null("mutual", a, b, options["knn_permutations"], options["seed"]), 0.95))
    return a.k / (a.n - 1), q95


OPTIONS = ("knn_k", "knn_max_samples", "knn_permutations", "seed")  # cknna reads the same


def parameters(o: dict) -> str:
    """The ``parameters`` column of both neighbourhood indices."""
    return (f"k {o['knn_k']}, cosine, self excluded, at most {o['knn_max_samples']} eval samples (seed {o['seed']}),"
            f" {o['knn_permutations']} permutations")


INDEX = Index(name="mutual_knn", summary="mutual k-NN alignment (samples of the evaluation split)", needs=SAMPLES,
              split=EVAL, symmetric=True, value=value, chance=chance,
              options=OPTIONS, parameters=parameters,
              title="mutual k-NN", limits=(0.0, 1.0))
