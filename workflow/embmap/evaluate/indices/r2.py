"""``r2``: the fit-split R^2 of the ridge map, both ways (the map stores' ``fit_r2``)."""

from __future__ import annotations

from . import MAPS, Index


def value(pair, options: dict) -> float:
    return pair.fit_r2


INDEX = Index(name="r2", summary="fit-split R^2 of the ridge map, both ways", needs=MAPS, symmetric=False,
              value=value, title="ridge R² (fit split)", parameters=lambda o: "ridge map, fit split")
