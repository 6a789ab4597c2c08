"""Re-initialise a network's variables: the paper's random control (PNASNet-Large*) for any architecture.

Each variable gets the value a fresh, untrained network would start from:

- kernels (2 or more dimensions): variance scaling, He / TF-slim's default
  (truncated normal, standard deviation sqrt(2 / fan_in) / 0.8796, cut at
  two standard deviations; fan_in = product of all but the last dimension,
  of the spatial dimensions for depthwise kernels);
- batch norm: ``moving_mean`` and ``beta`` 0, ``moving_variance`` and ``gamma`` 1;
- every other vector (biases): 0;
- scalars and integer variables (step counters) are left alone.

The values of a variable depend only on the seed and the variable's name,
so a feature-vector model and its classification model, which hold the same
layers under the same names, are re-initialised identically.
"""

from __future__ import annotations

import zlib

import numpy as np

TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of a standard normal truncated at +-2


def variable_key(name: str) -> str:
    """A variable's name without the ``:0`` output suffix."""
    return name.rsplit(":", 1)[0] if ":" in name else name


def initial_value(name: str, shape, seed: int, dtype=np.float32) -> np.ndarray | None:
    """The re-initialised value of variable ``name`` of ``shape``, or None to leave it alone."""
    shape = tuple(int(s) for s in shape)
    leaf = variable_key(name).rsplit("/", 1)[-1]
    if len(shape) == 0:
        return None
    if leaf in ("moving_variance", "gamma"):
        return np.ones(shape, dtype)
    if leaf in ("moving_mean", "beta") or len(shape) == 1:
        return np.zeros(shape, dtype)
    rng = np.random.default_rng([int(seed), zlib.crc32(variable_key(name).encode())])
    fan_in = int(np.prod(shape[:-2])) if "depthwise" in variable_key(name) else int(np.prod(shape[:-1]))
    std = np.sqrt(2.0 / max(1, fan_in)) / TRUNCATED_NORMAL_STD
    x = rng.standard_normal(shape)
    bad = np.abs(x) > 2
    while bad.any():
        x[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2
    return (std * x).astype(dtype)


def randomize(variables, seed: int, key=variable_key) -> dict:
    """Re-initialise ``variables`` (tf.Variables) in place; return counts of what changed.

    Variables are de-duplicated by identity, so passing the variables of a
    feature model and of a classification model that share them is fine.
    ``key(name)`` is the name the values are drawn by.
    """
    seen, counts = set(), {"reinitialised": 0, "left": 0, "parameters": 0}
    for v in variables:
        if id(v) in seen:
            continue
        seen.add(id(v))
        if not v.dtype.is_floating:
            counts["left"] += 1
            continue
        value = initial_value(key(v.name), v.shape, seed, v.dtype.as_numpy_dtype)
        if value is None:
            counts["left"] += 1
            continue
        v.assign(value)
        counts["reinitialised"] += 1
        counts["parameters"] += int(value.size)
    return counts


def pairing_key(features, logits):
    """The naming that pairs a feature model's variables with its classification model's.

    Both models hold the same layers; their variables must be found under
    the same names, either as they are or without their first name scope
    (a model-level prefix). Returns a ``key`` function for :func:`randomize`,
    or None when the names do not pair up.
    """
    f = {variable_key(v.name) for v in features}
    z = {variable_key(v.name) for v in logits}
    if f <= z:
        return variable_key

    def unscoped(name):
        return variable_key(name).split("/", 1)[-1]

    if {unscoped(n) for n in f} <= {unscoped(n) for n in z}:
        return unscoped
    return None
