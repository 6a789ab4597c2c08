"""Re-initialise a network's variables: the paper's random control (PNASNet-Large*) for any architecture.

Each variable gets the value a fresh, untrained network would start from:

- kernels (2 or more dimensions), by :data:`INITIALIZERS`: ``fan_in``
  (variance scaling as He: truncated normal, standard deviation
  sqrt(2 / fan_in) / 0.8796, cut at two standard deviations; fan_in = product
  of all but the last dimension, of the spatial dimensions for depthwise
  kernels) or ``fan_out``, what TF-slim's NASNet and PNASNet use
  (``variance_scaling_initializer(factor=2.0, mode='FAN_OUT')``: truncated
  normal of parameter sqrt(1.3 x 2 / fan_out), fan_out = the last dimension
  times the spatial ones); ``auto`` picks ``fan_out`` for NASNet/PNASNet
  handles (:func:`resolve_initializer`);
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
INITIALIZERS = {
    "fan_in": "variance scaling, truncated normal, std sqrt(2 / fan_in) (He; fan_in = receptive field x input "
              "channels, depthwise: receptive field)",
    "fan_out": "TF-slim NASNet/PNASNet: variance_scaling_initializer(factor=2.0, mode='FAN_OUT'), truncated normal "
               "of parameter sqrt(1.3 x 2 / fan_out) (fan_out = receptive field x output channels)",
}


def resolve_initializer(initializer: str, handle: str | None) -> str:
    """``auto`` -> ``fan_out`` for NASNet and PNASNet (TF-slim's arg scope for both), else ``fan_in``."""
    if initializer != "auto":
        if initializer not in INITIALIZERS:
            raise ValueError(f"initializer {initializer!r}: use auto or one of {sorted(INITIALIZERS)}")
        return initializer
    return "fan_out" if "nasnet" in str(handle or "").lower() else "fan_in"


def variable_name(v) -> str:
    """A variable's unique name: Keras 3's ``path`` where it has one, else TensorFlow's ``name``."""
    return getattr(v, "path", None) or v.name


def _floating(v) -> bool:
    return bool(np.issubdtype(np.dtype(getattr(v.dtype, "as_numpy_dtype", v.dtype)), np.floating))


def variable_key(name: str) -> str:
    """A variable's name without the ``:0`` output suffix."""
    return name.rsplit(":", 1)[0] if ":" in name else name


def initial_value(name: str, shape, seed: int, dtype=np.float32, initializer: str = "fan_in") -> np.ndarray | None:
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
    if initializer == "fan_out":  # tf.contrib.layers.variance_scaling_initializer's fans and its 1.3
        fan_out = int(np.prod(shape[:-2])) * shape[-1]
        std = np.sqrt(1.3 * 2.0 / max(1, fan_out))
    else:
        fan_in = int(np.prod(shape[:-2])) if "depthwise" in variable_key(name) else int(np.prod(shape[:-1]))
        std = np.sqrt(2.0 / max(1, fan_in)) / TRUNCATED_NORMAL_STD
    x = rng.standard_normal(shape)
    bad = np.abs(x) > 2
    while bad.any():
        x[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2
    return (std * x).astype(dtype)


def randomize(variables, seed: int, key=variable_key, initializer: str = "fan_in") -> dict:
    """Re-initialise ``variables`` (tf.Variables or Keras 3 variables) in place; return what changed.

    Variables are de-duplicated by identity, so passing the variables of a
    feature model and of a classification model that share them is fine.
    ``key(name)`` is the name the values are drawn by.
    """
    seen = set()
    counts = {"initializer": initializer, "kernels": INITIALIZERS[initializer], "reinitialised": 0, "left": 0,
              "parameters": 0}
    for v in variables:
        if id(v) in seen:
            continue
        seen.add(id(v))
        if not _floating(v):
            counts["left"] += 1
            continue
        dtype = np.dtype(getattr(v.dtype, "as_numpy_dtype", v.dtype))
        value = initial_value(key(variable_name(v)), v.shape, seed, dtype, initializer)
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
    f = {variable_key(variable_name(v)) for v in features}
    z = {variable_key(variable_name(v)) for v in logits}
    if f <= z:
        return variable_key

    def unscoped(name):
        return variable_key(name).split("/", 1)[-1]

    if {unscoped(n) for n in f} <= {unscoped(n) for n in z}:
        return unscoped
    return None
