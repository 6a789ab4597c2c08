"""Dataset kind ``lfw``: Labeled Faces in the Wild, or any tree in its layout, with a pairs file.

The images named by the pairs file form one split, ``pairs``, whose ids are
paths relative to the root (``Aaron_Peirsol/Aaron_Peirsol_0001.jpg``) and
whose labels index the identities in sorted order. Standard library only at
import time (the dataset registry imports it).
"""

from __future__ import annotations

from pathlib import Path

from . import DatasetError, Kind

PAIRS_SPLIT = "pairs"


def identity_labels(ids):
    """int64 [n]: the index of each id's identity (its folder) among the identities in sorted order."""
    import numpy as np

    from .pairs import identities_of

    who = identities_of(ids)
    index = {n: i for i, n in enumerate(sorted(set(who.tolist())))}
    return np.array([index[w] for w in who], dtype=np.int64)


class LFW:
    """Labeled Faces in the Wild, or any tree in its layout, with a pairs file in LFW's format.

    ``root/name/name_%04d.jpg`` holds the images; the images named by the
    pairs file form one split, ``pairs``, whose ids are the paths relative
    to ``root`` (``Aaron_Peirsol/Aaron_Peirsol_0001.jpg``) and whose labels
    index the identities in sorted order. Every image must exist: the
    manifest lists every missing one in its error.
    """

    kind = "lfw"

    def __init__(self, root: str, pairs: str):
        self.root, self.pairs = Path(root), Path(pairs)

    def manifest(self):
        import pandas as pd

        from . import pairs

        if not self.root.is_dir():
            raise DatasetError(f"dataset.root: {self.root} is not a directory")
        p = pairs.read_pairs(self.pairs)
        pairs.check_images(p, self.root)
        ids = p.images()
        return pd.DataFrame({"id": ids, "label": identity_labels(ids), "split": PAIRS_SPLIT})

    def image(self, id_: str):
        """One image as uint8 RGB [h, w, 3]."""
        import numpy as np
        from PIL import Image

        p = self.root / id_
        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        except FileNotFoundError:
            raise DatasetError(f"dataset {self.root}: image {id_} not found") from None

    def images(self, ids):
        """float32 [batch, h, w, 3] in [0, 1]; the images of a batch must share one size (align them otherwise)."""
        import numpy as np

        out = [self.image(i) for i in ids]
        shapes = {x.shape for x in out}
        if len(shapes) > 1:
            raise DatasetError(f"dataset {self.root}: images of different sizes {sorted(shapes)} in one batch "
                               f"(e.g. {ids[0]}); give the networks an 'align' block to crop them to one size")
        return np.stack(out).astype(np.float32) / 255.0


KIND = Kind("lfw", reader=LFW, tasks=("open_set",), faces=True, pairs="given",
            task_hint=": its images come with verification pairs",
            train_hint="has faces without a training split; use pretrained face networks")
