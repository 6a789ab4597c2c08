"""Fitting maps between embedding spaces.

- :mod:`.gram`: the one pass over the fit split (row blocks, shards, folds)
  and the centred cross-product blocks it leaves (:class:`~.blocks.Blocks`);
- :mod:`.ridge`: ridge maps from those blocks, one factorisation per source,
  alpha by K-fold cross-validation;
- :mod:`.methods`: the other map methods from the same blocks (lstsq,
  procrustes) and ridge by one linear solve;
- :mod:`.folds`: per-fold maps of the pairs protocols (open set), from
  per-fold blocks of one source network at a time held in memory.
"""


class FitError(ValueError):
    """A map cannot be fitted as configured (singular system, bad blocks, no samples)."""
