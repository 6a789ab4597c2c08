"""Tiny TF Hub-format SavedModel pairs (feature vector + classification sharing weights), built offline."""

from pathlib import Path

import numpy as np


def tiny_hub_pair(out, d=6, n_classes=6, seed=0, locatable=True, softmax=False):
    """Export ``out/feature_vector`` and ``out/classification`` like TF Hub's image models.

    Input: float RGB [b, h, w, 3] in [0, 1], any size. Features: [b, d]. Logits:
    [b, n_classes] from one Dense layer (``locatable``) or from two stacked
    linear layers, so that no [d, n_classes] kernel exists (affine all the same).
    Every variable, batch-norm statistics included, is set away from its
    initial value, as in a trained network. Returns ``out`` as a Path.
    """
    import tensorflow as tf
    import tf_keras as k

    k.utils.set_random_seed(seed)
    inp = k.Input((None, None, 3))
    x = k.layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    x = k.layers.BatchNormalization(name="conv/BatchNorm")(x)
    x = k.layers.Activation("relu")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    feat = k.layers.Dense(d, activation="tanh", name="embedding")(x)
    if locatable:
        logits = k.layers.Dense(n_classes, name="logits")(feat)
    else:
        logits = k.layers.Dense(n_classes, name="logits_b")(k.layers.Dense(3, name="logits_a")(feat))
    if softmax:
        logits = k.layers.Softmax()(logits)
    features_model, logits_model = k.Model(inp, feat), k.Model(inp, logits)
    rng = np.random.default_rng(seed + 100)
    for v in logits_model.weights:
        value = rng.uniform(0.5, 1.5, v.shape) if "variance" in v.name else rng.normal(0, 0.5, v.shape)
        v.assign(value.astype(np.float32))
    out = Path(out)
    tf.saved_model.save(features_model, str(out / "feature_vector"))
    tf.saved_model.save(logits_model, str(out / "classification"))
    return out
