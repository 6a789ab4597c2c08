"""Datasets: which images exist, their labels and splits, and how to read them.

One module per dataset kind family, each holding its config check beside its
reader, found through :data:`KINDS`:

- :mod:`.digits`: ``digits`` (scikit-learn's 8x8 digits, closed set) and
  ``digit_pairs`` (the open-set demo: verification pairs among digits no
  network learned);
- :mod:`.imagenet`: ``imagenet`` (ILSVRC2012 in its standard layout);
- :mod:`.image_list`: ``image_list`` (any image files listed in a CSV);
- :mod:`.lfw`: ``lfw`` (Labeled Faces in the Wild and trees in its layout);
- :mod:`.embeddings`: ``embeddings`` (no images: bring-your-own stores).

Shared pieces: :mod:`.manifest` (the table of images, labels and splits every
job reads), :mod:`.image_files` (datasets of image files), :mod:`.images`
(the decoding pipeline), :mod:`.pairs` (LFW's pairs format) and
:mod:`.faces` (MTCNN detection and face crops).

To add a kind: write a module with a ``KIND = Kind(...)`` (its check and its
reader), list it in ``_kinds`` below, add its branch to the ``dataset``
schema, and test it.

Standard library only at import time (the Snakefile imports the registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


class DatasetError(ValueError):
    """A dataset that cannot be read as configured; the message names the file or key."""


def _no_check(where, spec, ctx) -> None:
    return None


@dataclass(frozen=True)
class Kind:
    """A dataset kind.

    Attributes
    ----------
    name : str
        The value of ``dataset.kind``.
    reader : callable or None
        ``reader(**dataset block without kind)`` -> the object that lists and
        reads the images; None for kinds without images.
    check : callable
        ``check(where, spec, ctx)`` raises :class:`embmap.config.ConfigError`
        for what the schema cannot see (paths that must exist).
    tasks : tuple of str
        The tasks the kind serves.
    images, image_files, trains, faces : bool
        It has images for models to read; they are image files (decoded,
        cropped and resized by each network's preprocessing); it has a
        labelled ``train`` split the demo networks can be trained on; its
        images are photographs of faces (MTCNN alignment applies).
    small : bool
        A small set bundled with the workflow and held in memory (the
        digits): every job on it is seconds of work, so its jobs ask for one
        core (:meth:`embmap.plan.Plan.threads`).
    pairs : None, "given" or "written"
        open_set: the pairs file is named in the config, or written by the workflow.
    """

    name: str
    reader: Callable | None
    tasks: tuple
    check: Callable = _no_check
    images: bool = True
    image_files: bool = False
    trains: bool = False
    faces: bool = False
    small: bool = False
    pairs: str | None = None
    task_hint: str = ""
    train_hint: str = "has no labelled training images"


def _kinds() -> dict[str, Kind]:
    from . import digits, embeddings, image_list, imagenet, lfw

    out = {}
    for module in (digits, embeddings, imagenet, image_list, lfw):
        for kind in getattr(module, "KINDS", None) or [module.KIND]:
            out[kind.name] = kind
    return out


KINDS: dict[str, Kind] = _kinds()


def get(spec: dict):
    """The reader of a config ``dataset:`` block (defaults filled in from the schema)."""
    from .. import config

    spec = config.defaults("dataset", spec)
    kind = KINDS.get(spec.get("kind"))
    if kind is None or kind.reader is None:
        known = sorted(k for k, v in KINDS.items() if v.reader is not None)
        raise DatasetError(f"dataset.kind: {spec.get('kind')!r} has no images to read; kinds with images: {known}")
    return kind.reader(**{k: v for k, v in spec.items() if k not in ("kind", "bad_images")})
