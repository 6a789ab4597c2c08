"""Source ``arcface``: peteryuX/arcface-tf2's face networks, rebuilt in Keras and restored from their checkpoints.

The inference architecture: a Keras application backbone (``ResNet50`` or
``MobileNetV2``), then BatchNorm, Dropout, Flatten, Dense(``embedding``),
BatchNorm; input RGB in [0, 1] at 112 x 112. Every variable of that
model must be restored from the checkpoint (a partial restore is an error
naming the variables left out); values only training uses are ignored.
Face networks have no classifier: task open_set only. Standard library only
at import time.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError
from .base import Model, NetworkError, Source, keras, tf

BACKBONES = ("ResNet50", "MobileNetV2")


def arcface_model(backbone: str, size: int, embedding: int):
    """arcface-tf2's ``ArcFaceModel(training=False)``: backbone, then its OutputLayer, as nested Keras models."""
    k = keras()
    if backbone not in BACKBONES:
        raise NetworkError(f"arcface backbone {backbone!r}: use one of {BACKBONES}")
    inputs = k.Input([size, size, 3], name="input_image")
    app = getattr(k.applications, backbone)
    x = app(input_shape=(size, size, 3), include_top=False, weights=None)(inputs)
    head_in = k.Input(x.shape[1:])
    y = k.layers.BatchNormalization()(head_in)
    y = k.layers.Dropout(rate=0.5)(y)
    y = k.layers.Flatten()(y)
    y = k.layers.Dense(embedding, kernel_regularizer=k.regularizers.l2(5e-4))(y)
    y = k.layers.BatchNormalization()(y)
    embds = k.Model(head_in, y, name="OutputLayer")(x)
    return k.Model(inputs, embds, name="arcface_model")


class ArcFaceModel(Model):
    """An arcface-tf2 network restored from its checkpoint (a prefix, or a directory with a ``checkpoint`` file)."""

    def __init__(self, name, checkpoint, backbone, input_size, embedding, input_range):
        super().__init__(name, str(checkpoint), None, input_size, 3, input_range)
        t = tf()
        prefix = t.train.latest_checkpoint(str(checkpoint)) if Path(checkpoint).is_dir() else str(checkpoint)
        if not prefix or not Path(f"{prefix}.index").exists():
            raise NetworkError(f"network {name!r}: no checkpoint at {checkpoint} (expected PREFIX.index or a "
                               "directory with a 'checkpoint' file)")
        self.model = arcface_model(backbone, self.input_size[0], embedding)
        try:
            status = self.model.load_weights(prefix)
        except Exception as e:  # tf raises many kinds
            raise NetworkError(f"network {name!r}: checkpoint {prefix} does not fit arcface {backbone}: {e}") from e
        try:  # every variable of the inference model must come from the checkpoint
            status.assert_existing_objects_matched()
        except AssertionError as e:
            import re

            missing = re.findall(r"tf\.Variable '([^']+)'", str(e))
            count = re.search(r"Found (\d+) Python objects", str(e))
            n = count.group(1) if count else len(missing)
            raise NetworkError(
                f"network {name!r}: checkpoint {prefix} leaves {n} variables of "
                f"arcface {backbone} (embedding {embedding}) unrestored, e.g. {', '.join(missing[:6])}; it is not a "
                "checkpoint of this backbone and embedding size") from None
        status.expect_partial()  # values only training needs (ArcHead, optimizer slots) may stay unused
        self.features_layer = self.model

    def features(self, images):
        import numpy as np

        return self.model(self.preprocess(images), training=False).numpy().astype(np.float32)


def check(where: str, spec: dict, ctx) -> None:
    p = ctx.path(spec["checkpoint"])
    if ctx.check_paths and not (p.exists() or Path(f"{p}.index").exists()):
        raise ConfigError(f"{where}.checkpoint: nothing at {p}")


def open_arcface(name: str, spec: dict, preprocessing: dict, model_dir=None) -> Model:
    return ArcFaceModel(name, spec["checkpoint"], spec["backbone"], preprocessing["input_size"],
                        int(spec["embedding"]), preprocessing["input_range"])


SOURCE = Source("arcface", open_arcface, check, classifier=False, layers=False)
