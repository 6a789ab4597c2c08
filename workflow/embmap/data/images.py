"""Reading image files: decode, central crop, bilinear resize, in a parallel ``tf.data`` pipeline.

The preprocessing of the paper's networks (TF-slim's evaluation
preprocessing, which TF Hub's image models expect):

1. decode the file (JPEG, PNG, GIF's first frame, BMP) to RGB; greyscale and
   CMYK files become 3 channels;
2. scale to float32 in [0, 1];
3. keep the central ``crop_fraction`` of height and width (0.875 by default);
4. resize to the network's ``input_size`` [height, width], bilinear;
5. (the network rescales [0, 1] to its own ``input_range``, see
   :class:`embmap.models.Model`).

:func:`decode_file` reads one file and raises :class:`ImageError` naming it;
:func:`batches` runs the same steps for many files in parallel with
prefetching and, when a file cannot be decoded, names that file.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_CROP_FRACTION = 0.875
DECODE = "tf.io.decode_image, 3 channels (RGB), uint8 -> float32 [0, 1]"


class ImageError(ValueError):
    """An image file that cannot be read or decoded; the message starts with its path."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        super().__init__(f"{path}: {reason}")


def _tf():
    import tensorflow as tf

    return tf


def describe(input_size, crop_fraction: float, input_range=(0.0, 1.0)) -> dict:
    """The preprocessing as recorded in a store's ``preprocessing`` attribute."""
    return {"decode": DECODE, "crop": "central", "crop_fraction": float(crop_fraction), "resize": "bilinear",
            "input_size": [int(v) for v in input_size], "input_range": [float(v) for v in input_range]}


def decode_file(path) -> np.ndarray:
    """Decode one image file to uint8 [height, width, 3]; raise :class:`ImageError` naming ``path`` otherwise."""
    tf = _tf()
    try:
        data = tf.io.read_file(str(path))
    except (tf.errors.OpError, OSError) as e:
        raise ImageError(path, f"cannot read: {getattr(e, 'message', e)}") from None
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError) as e:
        raise ImageError(path, f"cannot decode as an image: {getattr(e, 'message', e)}") from None
    return image.numpy()


def preprocess(image, input_size, crop_fraction: float = DEFAULT_CROP_FRACTION):
    """uint8 [h, w, 3] tensor -> float32 [input_size, 3] in [0, 1]: central crop, then bilinear resize."""
    tf = _tf()
    x = tf.image.convert_image_dtype(image, tf.float32)
    if crop_fraction < 1.0:
        x = tf.image.central_crop(x, float(crop_fraction))
    return tf.image.resize(x, [int(input_size[0]), int(input_size[1])], method="bilinear", antialias=False)


def load(path, input_size, crop_fraction: float = DEFAULT_CROP_FRACTION) -> np.ndarray:
    """One file through the whole preprocessing: float32 [h, w, 3] in [0, 1]."""
    return preprocess(decode_file(path), input_size, crop_fraction).numpy()


def _check(input_size, crop_fraction):
    if input_size is None or len(input_size) != 2:
        raise ValueError(f"input_size must be [height, width], got {input_size!r}")
    if not 0.0 < float(crop_fraction) <= 1.0:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}")


def dataset(paths, input_size, crop_fraction: float = DEFAULT_CROP_FRACTION, batch_size: int = 64,
            parallel: int | None = None):
    """A ``tf.data.Dataset`` of float32 batches [b, h, w, 3] over ``paths`` in order.

    Files are read and decoded by ``parallel`` workers (default: autotuned)
    while the consumer works on earlier batches (prefetch), so on an
    accelerator the decoder keeps up.
    """
    tf = _tf()
    _check(input_size, crop_fraction)
    size = [int(v) for v in input_size]
    frac = float(crop_fraction)
    workers = parallel or tf.data.AUTOTUNE

    def one(p):
        image = tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
        return preprocess(image, size, frac)

    ds = tf.data.Dataset.from_tensor_slices(np.asarray([str(p) for p in paths], dtype=object).astype(str))
    ds = ds.map(one, num_parallel_calls=workers, deterministic=True)
    return ds.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)


def batches(paths, input_size, crop_fraction: float = DEFAULT_CROP_FRACTION, batch_size: int = 64,
            parallel: int | None = None):
    """Yield (start, images float32 [b, h, w, 3]) over ``paths`` in order.

    A file that cannot be read or decoded stops the iteration with an
    :class:`ImageError` naming it (found by decoding the files of the failing
    batch one by one).
    """
    tf = _tf()
    paths = [str(p) for p in paths]
    it = iter(dataset(paths, input_size, crop_fraction, batch_size, parallel))
    start = 0
    while start < len(paths):
        try:
            x = next(it)
        except StopIteration:
            break
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError) as e:
            for p in paths[start:]:
                decode_file(p)  # raises naming the file
            raise ImageError(paths[start], f"reading the batch starting here failed: {e.message}") from None
        yield start, x.numpy()
        start += int(x.shape[0])


def find_unreadable(paths, parallel: int | None = None) -> dict[str, str]:
    """Decode every file once, in parallel; return {path: reason} for those that cannot be read as images.

    Greyscale, CMYK and alpha-channel files decode to RGB and count as
    readable. The pass decodes but does not resize, so it costs about one
    decode per file.
    """
    tf = _tf()
    paths = [str(p) for p in paths]
    if not paths:
        return {}

    def probe(p):
        image = tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
        return p, tf.shape(image)

    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths, dtype=str))
    ds = ds.map(probe, num_parallel_calls=parallel or tf.data.AUTOTUNE, deterministic=False)
    ds = ds.ignore_errors().prefetch(tf.data.AUTOTUNE)
    good = {p.decode() for p, _ in ds.as_numpy_iterator()}
    bad = {}
    for p in paths:
        if p not in good:
            try:
                decode_file(p)
                bad[p] = "cannot be decoded in the parallel pipeline"
            except ImageError as e:
                bad[p] = str(e)[len(p) + 2:]
    return bad
