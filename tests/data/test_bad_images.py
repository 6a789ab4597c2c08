"""Unreadable and unusual image files: colour variants are converted, unreadable ones follow the policy."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from embmap import data
from embmap.data import images
from embmap.data import manifest as mf

pytestmark = pytest.mark.tensorflow

RGB = (200, 40, 90)


def _files(root):
    """One file of every kind the issue names, beside two good ones. Returns {kind: relative path}."""
    root.mkdir(parents=True, exist_ok=True)
    base = Image.new("RGB", (40, 30), RGB)
    files = {}

    def save(kind, name, image, **kw):
        image.save(root / name, **kw)
        files[kind] = name

    save("rgb", "rgb.jpg", base, quality=95)
    save("grey", "grey.jpg", base.convert("L"), quality=95)
    save("cmyk", "cmyk.jpg", base.convert("CMYK"), quality=95)
    save("rgba", "rgba.png", base.convert("RGBA"))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    noise.save(root / "full.jpg", quality=90)
    data = (root / "full.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    files["truncated"] = "truncated.jpg"
    (root / "empty.jpg").write_bytes(b"")
    files["empty"] = "empty.jpg"
    (root / "text.jpg").write_text("not an image\n")
    files["text"] = "text.jpg"
    (root / "full.jpg").unlink()
    return files


BAD = ("truncated", "empty", "text")


def test_grey_cmyk_and_alpha_files_decode_to_rgb(tmp_path):
    files = _files(tmp_path)
    for kind in ("rgb", "grey", "cmyk", "rgba"):
        x = images.decode_file(tmp_path / files[kind])
        assert x.shape == (30, 40, 3) and x.dtype == np.uint8, kind
    grey = images.decode_file(tmp_path / files["grey"])
    assert np.all(grey[..., 0] == grey[..., 1])
    for kind in ("cmyk", "rgba"):
        np.testing.assert_allclose(images.decode_file(tmp_path / files[kind]).mean(axis=(0, 1)), RGB, atol=6)


def test_find_unreadable_names_exactly_the_bad_files_with_a_reason(tmp_path):
    files = _files(tmp_path)
    bad = images.find_unreadable([tmp_path / f for f in files.values()])
    assert set(bad) == {str(tmp_path / files[k]) for k in BAD}
    assert all(reason for reason in bad.values())


def _image_list(tmp_path):
    files = _files(tmp_path / "imgs")
    rows = [(f"imgs/{name}", i % 2, "train" if i % 2 else "test") for i, name in enumerate(files.values())]
    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(tmp_path / "list.csv", index=False)
    return files


def test_policy_fail_lists_every_unreadable_file_before_any_extraction(tmp_path):
    files = _image_list(tmp_path)
    spec = {"kind": "image_list", "path": str(tmp_path / "list.csv")}
    with pytest.raises(data.DatasetError, match="3 unreadable image") as e:
        mf.write_manifest(spec, tmp_path / "manifest.csv")
    for k in BAD:
        assert files[k] in str(e.value)
    assert not (tmp_path / "manifest.csv").exists()


def test_policy_skip_records_the_skipped_ids_and_leaves_them_out_of_every_split(tmp_path):
    files = _image_list(tmp_path)
    spec = {"kind": "image_list", "path": str(tmp_path / "list.csv"), "bad_images": "skip"}
    mf.write_manifest(spec, tmp_path / "manifest.csv", log=lambda *_: None)
    full = mf.read_manifest(tmp_path / "manifest.csv", with_skipped=True)
    assert set(full.id[full.skipped != ""]) == {f"imgs/{files[k]}" for k in BAD}
    used = mf.read_manifest(tmp_path / "manifest.csv")
    assert "skipped" not in used.columns and len(used) == len(files) - 3
    assert not set(used.id) & {f"imgs/{files[k]}" for k in BAD}
    for split in ("train", "test"):
        assert set(mf.read_manifest(tmp_path / "manifest.csv", split).id) <= set(used.id)
