"""Inception-v4 (Szegedy et al. 2017) in Keras, with variables named after the TF-slim checkpoint.

Inception-v4 is not on TF Hub; its ImageNet weights are TF-slim's
``inception_v4_2016_09_09`` checkpoint (``inception_v4.ckpt``). The
``tf-slim`` package does not ship the architecture, so this module builds
the published network layer for layer as ``tf_slim``'s ``nets/inception_v4.py``
defines it (inference mode, no auxiliary head), names every layer after its
slim scope, and reads the checkpoint by those names:

- convolutions: ``InceptionV4/<scope>/weights`` [kh, kw, in, out], no bias;
- their batch norms: ``InceptionV4/<scope>/BatchNorm/{beta,moving_mean,moving_variance}``
  (no scale, epsilon 0.001);
- the classifier: ``InceptionV4/Logits/Logits/{weights [1536, 1001], biases [1001]}``.

Input: RGB in [-1, 1], 299 x 299 natively (any size of at least 75 works:
the final average pool covers the whole 8 x 8, or smaller, grid).
Features: ``PreLogitsFlatten``, 1536 per image. Logits: 1001 classes, 0 = background.
"""

from __future__ import annotations


SCOPE = "InceptionV4"
FEATURES = 1536
CLASSES = 1001
INPUT_SIZE = (299, 299)
INPUT_RANGE = (-1.0, 1.0)
BN_EPSILON = 0.001


def _keras():
    import tf_keras

    return tf_keras


def _conv(k, x, filters, kernel, scope, strides=1, padding="same"):
    """slim.conv2d in the inception arg scope: conv without bias, batch norm without scale, ReLU."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    x = k.layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=scope)(x)
    x = k.layers.BatchNormalization(scale=False, epsilon=BN_EPSILON, momentum=0.9997, name=f"{scope}/BatchNorm")(x)
    return k.layers.Activation("relu", name=f"{scope}/Relu")(x)


def _max(k, x, scope, strides=2, padding="valid"):
    return k.layers.MaxPooling2D(3, strides=strides, padding=padding, name=scope)(x)


def _avg(k, x, scope):
    return k.layers.AveragePooling2D(3, strides=1, padding="same", name=scope)(x)


def _cat(k, xs, scope):
    return k.layers.Concatenate(axis=3, name=f"{scope}/concat")(xs)


def _block_a(k, x, s):
    b0 = _conv(k, x, 96, 1, f"{s}/Branch_0/Conv2d_0a_1x1")
    b1 = _conv(k, x, 64, 1, f"{s}/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(k, b1, 96, 3, f"{s}/Branch_1/Conv2d_0b_3x3")
    b2 = _conv(k, x, 64, 1, f"{s}/Branch_2/Conv2d_0a_1x1")
    b2 = _conv(k, b2, 96, 3, f"{s}/Branch_2/Conv2d_0b_3x3")
    b2 = _conv(k, b2, 96, 3, f"{s}/Branch_2/Conv2d_0c_3x3")
    b3 = _avg(k, x, f"{s}/Branch_3/AvgPool_0a_3x3")
    b3 = _conv(k, b3, 96, 1, f"{s}/Branch_3/Conv2d_0b_1x1")
    return _cat(k, [b0, b1, b2, b3], s)


def _reduction_a(k, x, s):
    b0 = _conv(k, x, 384, 3, f"{s}/Branch_0/Conv2d_1a_3x3", strides=2, padding="valid")
    b1 = _conv(k, x, 192, 1, f"{s}/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(k, b1, 224, 3, f"{s}/Branch_1/Conv2d_0b_3x3")
    b1 = _conv(k, b1, 256, 3, f"{s}/Branch_1/Conv2d_1a_3x3", strides=2, padding="valid")
    b2 = _max(k, x, f"{s}/Branch_2/MaxPool_1a_3x3")
    return _cat(k, [b0, b1, b2], s)


def _block_b(k, x, s):
    b0 = _conv(k, x, 384, 1, f"{s}/Branch_0/Conv2d_0a_1x1")
    b1 = _conv(k, x, 192, 1, f"{s}/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(k, b1, 224, (1, 7), f"{s}/Branch_1/Conv2d_0b_1x7")
    b1 = _conv(k, b1, 256, (7, 1), f"{s}/Branch_1/Conv2d_0c_7x1")
    b2 = _conv(k, x, 192, 1, f"{s}/Branch_2/Conv2d_0a_1x1")
    b2 = _conv(k, b2, 192, (7, 1), f"{s}/Branch_2/Conv2d_0b_7x1")
    b2 = _conv(k, b2, 224, (1, 7), f"{s}/Branch_2/Conv2d_0c_1x7")
    b2 = _conv(k, b2, 224, (7, 1), f"{s}/Branch_2/Conv2d_0d_7x1")
    b2 = _conv(k, b2, 256, (1, 7), f"{s}/Branch_2/Conv2d_0e_1x7")
    b3 = _avg(k, x, f"{s}/Branch_3/AvgPool_0a_3x3")
    b3 = _conv(k, b3, 128, 1, f"{s}/Branch_3/Conv2d_0b_1x1")
    return _cat(k, [b0, b1, b2, b3], s)


def _reduction_b(k, x, s):
    b0 = _conv(k, x, 192, 1, f"{s}/Branch_0/Conv2d_0a_1x1")
    b0 = _conv(k, b0, 192, 3, f"{s}/Branch_0/Conv2d_1a_3x3", strides=2, padding="valid")
    b1 = _conv(k, x, 256, 1, f"{s}/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(k, b1, 256, (1, 7), f"{s}/Branch_1/Conv2d_0b_1x7")
    b1 = _conv(k, b1, 320, (7, 1), f"{s}/Branch_1/Conv2d_0c_7x1")
    b1 = _conv(k, b1, 320, 3, f"{s}/Branch_1/Conv2d_1a_3x3", strides=2, padding="valid")
    b2 = _max(k, x, f"{s}/Branch_2/MaxPool_1a_3x3")
    return _cat(k, [b0, b1, b2], s)


def _block_c(k, x, s):
    b0 = _conv(k, x, 256, 1, f"{s}/Branch_0/Conv2d_0a_1x1")
    b1 = _conv(k, x, 384, 1, f"{s}/Branch_1/Conv2d_0a_1x1")
    b1 = _cat(k, [_conv(k, b1, 256, (1, 3), f"{s}/Branch_1/Conv2d_0b_1x3"),
                  _conv(k, b1, 256, (3, 1), f"{s}/Branch_1/Conv2d_0c_3x1")], f"{s}/Branch_1")
    b2 = _conv(k, x, 384, 1, f"{s}/Branch_2/Conv2d_0a_1x1")
    b2 = _conv(k, b2, 448, (3, 1), f"{s}/Branch_2/Conv2d_0b_3x1")
    b2 = _conv(k, b2, 512, (1, 3), f"{s}/Branch_2/Conv2d_0c_1x3")
    b2 = _cat(k, [_conv(k, b2, 256, (1, 3), f"{s}/Branch_2/Conv2d_0d_1x3"),
                  _conv(k, b2, 256, (3, 1), f"{s}/Branch_2/Conv2d_0e_3x1")], f"{s}/Branch_2")
    b3 = _avg(k, x, f"{s}/Branch_3/AvgPool_0a_3x3")
    b3 = _conv(k, b3, 256, 1, f"{s}/Branch_3/Conv2d_0b_1x1")
    return _cat(k, [b0, b1, b2, b3], s)


def build(input_size=INPUT_SIZE, num_classes: int = CLASSES):
    """(features model, logits model) sharing every layer.

    ``features``: images [b, h, w, 3] in [-1, 1] -> PreLogitsFlatten [b, 1536];
    ``logits``: the same images -> [b, num_classes].
    """
    k = _keras()
    h, w = (None, None) if input_size is None else tuple(None if v is None else int(v) for v in input_size)
    inp = k.Input(shape=(h, w, 3), name="images")
    x = _conv(k, inp, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")   # 149 x 149 x 32
    x = _conv(k, x, 32, 3, "Conv2d_2a_3x3", padding="valid")                # 147 x 147 x 32
    x = _conv(k, x, 64, 3, "Conv2d_2b_3x3")                                  # 147 x 147 x 64
    x = _cat(k, [_max(k, x, "Mixed_3a/Branch_0/MaxPool_0a_3x3"),
                 _conv(k, x, 96, 3, "Mixed_3a/Branch_1/Conv2d_0a_3x3", strides=2, padding="valid")],
             "Mixed_3a")                                                      # 73 x 73 x 160
    b0 = _conv(k, x, 64, 1, "Mixed_4a/Branch_0/Conv2d_0a_1x1")
    b0 = _conv(k, b0, 96, 3, "Mixed_4a/Branch_0/Conv2d_1a_3x3", padding="valid")
    b1 = _conv(k, x, 64, 1, "Mixed_4a/Branch_1/Conv2d_0a_1x1")
    b1 = _conv(k, b1, 64, (1, 7), "Mixed_4a/Branch_1/Conv2d_0b_1x7")
    b1 = _conv(k, b1, 64, (7, 1), "Mixed_4a/Branch_1/Conv2d_0c_7x1")
    b1 = _conv(k, b1, 96, 3, "Mixed_4a/Branch_1/Conv2d_1a_3x3", padding="valid")
    x = _cat(k, [b0, b1], "Mixed_4a")                                         # 71 x 71 x 192
    x = _cat(k, [_conv(k, x, 192, 3, "Mixed_5a/Branch_0/Conv2d_1a_3x3", strides=2, padding="valid"),
                 _max(k, x, "Mixed_5a/Branch_1/MaxPool_1a_3x3")], "Mixed_5a")  # 35 x 35 x 384
    for c in "bcde":
        x = _block_a(k, x, f"Mixed_5{c}")
    x = _reduction_a(k, x, "Mixed_6a")                                        # 17 x 17 x 1024
    for c in "bcdefgh":
        x = _block_b(k, x, f"Mixed_6{c}")
    x = _reduction_b(k, x, "Mixed_7a")                                        # 8 x 8 x 1536
    for c in "bcd":
        x = _block_c(k, x, f"Mixed_7{c}")
    x = k.layers.GlobalAveragePooling2D(name="Logits/AvgPool_1a")(x)          # = avg_pool over the whole grid
    feats = k.layers.Flatten(name="Logits/PreLogitsFlatten")(x)
    logits = k.layers.Dense(num_classes, name="Logits/Logits")(feats)
    return k.Model(inp, feats, name="InceptionV4_features"), k.Model(inp, logits, name="InceptionV4_logits")


_SUFFIX = {"kernel": "weights", "bias": "biases", "beta": "BatchNorm/beta", "moving_mean": "BatchNorm/moving_mean",
           "moving_variance": "BatchNorm/moving_variance"}


def checkpoint_names(model) -> dict[str, object]:
    """TF-slim checkpoint name -> the model's variable, for every variable of ``model``."""
    out = {}
    for layer in model.layers:
        for attr in ("kernel", "bias", "beta", "moving_mean", "moving_variance"):
            v = getattr(layer, attr, None)
            if v is None or not hasattr(v, "assign"):
                continue
            scope = layer.name.removesuffix("/BatchNorm")
            out[f"{SCOPE}/{scope}/{_SUFFIX[attr]}"] = v
    n_vars = len(model.weights)
    if len(out) != n_vars:  # pragma: no cover - a layer type this mapping does not know
        raise RuntimeError(f"Inception-v4: {n_vars - len(out)} variable(s) without a checkpoint name")
    return out


class CheckpointError(ValueError):
    pass


def load_checkpoint(model, path) -> dict:
    """Assign every variable of ``model`` from the TF-slim checkpoint at ``path`` (prefix or ``.ckpt`` file).

    Variables the model does not use (the auxiliary head, ``global_step``)
    are ignored. Raises :class:`CheckpointError` naming the checkpoint and the
    first missing or misshapen variable. Returns a summary.
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(path))
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: cannot be read: {getattr(e, 'message', e)}") from None
    shapes = reader.get_variable_to_shape_map()
    names = checkpoint_names(model)
    missing = [n for n in names if n not in shapes]
    if missing:
        raise CheckpointError(f"checkpoint {path}: {len(missing)} of {len(names)} Inception-v4 variables missing, "
                              f"first: {missing[0]} (is this inception_v4_2016_09_09?)")
    for name, var in names.items():
        if tuple(shapes[name]) != tuple(var.shape):
            raise CheckpointError(f"checkpoint {path}: {name} has shape {tuple(shapes[name])}, "
                                  f"Inception-v4 needs {tuple(var.shape)}")
        var.assign(reader.get_tensor(name))
    return {"checkpoint": str(path), "variables": len(names), "ignored": sorted(set(shapes) - set(names))[:20]}


def save_checkpoint(model, prefix) -> None:
    """Write the model's variables under their TF-slim names (a name-based checkpoint like slim's)."""
    import tensorflow as tf

    names = checkpoint_names(model)
    keys = sorted(names)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=keys, shape_and_slices=[""] * len(keys),
                      tensors=[names[k].read_value() for k in keys])
