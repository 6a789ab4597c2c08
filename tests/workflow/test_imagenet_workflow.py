"""configs/imagenet.yaml plans the paper's full DAG; a miniature of it runs end to end offline."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from embmap import config, plan, stores
from fake_imagenet import WNIDS, fake_imagenet
from helpers import ROOT, snakemake

pytestmark = pytest.mark.workflow

IMAGENET = yaml.safe_load((ROOT / "configs" / "imagenet.yaml").read_text())


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    table = output[output.index("Job stats"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def test_imagenet_config_plans_the_papers_eleven_networks(tmp_path):
    (tmp_path / "data" / "ILSVRC2012" / "train").mkdir(parents=True)
    (tmp_path / "data" / "ILSVRC2012" / "val").mkdir()
    (tmp_path / "data" / "models").mkdir()
    (tmp_path / "data" / "models" / "inception_v4.ckpt").write_bytes(b"")
    config.check(IMAGENET)
    p = plan.Plan(IMAGENET, tmp_path)
    exp = p.experiments["imagenet"]
    nets = list(exp.networks)
    assert len(nets) == 11 and nets[-1] == "pnasnet_large_random" and exp.networks[nets[-1]].control
    assert exp.networks[nets[-1]].label == "PNASNet Large*"
    # the footnote: 331 for all but MobileNet; Inception-v4 reads [-1, 1], the TF Hub models [0, 1]
    sizes = {k: p.preprocessing("imagenet", k)["input_size"] for k in nets}
    assert sizes["mobilenet_v2_140_224"] == [224, 224]
    assert all(s == [331, 331] for k, s in sizes.items() if k != "mobilenet_v2_140_224")
    assert p.preprocessing("imagenet", "inception_v4") == {"input_size": [331, 331], "input_range": [-1.0, 1.0],
                                                           "crop_fraction": 0.875}
    assert p.preprocessing("imagenet", "inception_v3")["input_range"] == [0.0, 1.0]  # TF Hub's, the schema default
    handles = {k: exp.networks[k].spec.get("handle") for k in nets}
    assert handles["inception_v1"] == "https://tfhub.dev/google/imagenet/inception_v1/feature_vector/5"
    assert exp.networks["inception_v1"].spec["classifier"].endswith("/inception_v1/classification/5")

    r = snakemake(tmp_path, IMAGENET, "-n")
    jobs = job_counts(r.stdout + r.stderr)
    assert jobs["extract"] == 11 * 2  # 11 networks x {train, val}
    assert jobs["fit_maps"] == 11 and jobs["network_table"] == 1 and jobs["evaluate_closed_set"] == 1
    maps = sum(len([b for b in nets if b != a]) for a in nets)
    assert maps == 110


def test_missing_imagenet_root_is_named_before_any_job(tmp_path):
    r = snakemake(tmp_path, IMAGENET, "-n", check=False)
    assert r.returncode != 0
    assert "experiments.imagenet.dataset.root: no train/ folder in data/ILSVRC2012" in r.stdout + r.stderr


@pytest.mark.tensorflow
def test_miniature_imagenet_run_gives_table_1_and_table_2(tmp_path):
    """Two TF Hub-format pairs and a randomized control over a fabricated ILSVRC tree, end to end."""
    from fake_hub import tiny_hub_pair

    root = fake_imagenet(tmp_path / "data" / "ILSVRC2012", per_class=4, val_layout="flat")
    # a truncated training JPEG and an empty val file, left out of every network's store by policy
    bad_train = sorted((root / "train").rglob("*.JPEG"))[5]
    bad_train.write_bytes(bad_train.read_bytes()[:200])
    bad_val = root / "val" / "ILSVRC2012_val_00000004.JPEG"
    bad_val.write_bytes(b"")
    n_classes = len(WNIDS) + 1
    a = tiny_hub_pair(tmp_path / "models" / "a", d=6, n_classes=n_classes, seed=1)
    b = tiny_hub_pair(tmp_path / "models" / "b", d=8, n_classes=n_classes, seed=2, locatable=False)

    def net(pair, **kw):
        return {"source": "tfhub", "handle": f"./models/{pair.name}/feature_vector",
                "classifier": f"./models/{pair.name}/classification", "input_size": [20, 20], **kw}

    cfg = {"experiments": {"mini": {
        "task": "closed_set", "dataset": {"kind": "imagenet", "root": "data/ILSVRC2012", "bad_images": "skip"},
        "fit_split": "train", "eval_split": "val", "store": {"batch_size": 8},
        "preprocessing": {"input_size": [24, 24]},
        "networks": {"ctrl": net(a, control=True, randomize=True, seed=3, label="A*"),  # listed first, tabled last
                     "a": net(a, label="A"), "b": net(b, fixed_input=True)}}}}
    snakemake(tmp_path, cfg)
    res = tmp_path / "results" / "mini"
    t1 = pd.read_csv(res / "tables" / "networks.csv")
    assert list(t1.network) == ["a", "b", "ctrl"]
    assert list(t1.feature_dim) == [6, 8, 6] and list(t1.input_size) == ["24x24", "20x20", "24x24"]
    assert list(t1.classifier) == ["variables", "least_squares", "variables"]
    assert list(t1.randomized) == [False, False, True] and (t1.n == 9).all()
    m = pd.read_csv(res / "tables" / "closed_set_matrix.csv", index_col=0)
    assert list(m.index) == ["a", "b", "ctrl"] and list(m.columns) == ["a", "b", "ctrl"]
    np.testing.assert_allclose(np.diag(m.to_numpy()), t1.top1, atol=1e-6)
    manifest = pd.read_csv(res / "data" / "manifest.csv")
    assert (manifest.split == "val").sum() == 10 and manifest.label.between(1, len(WNIDS)).all()
    skipped = {"train": [str(bad_train.relative_to(root))], "val": ["val/ILSVRC2012_val_00000004.JPEG"]}
    for split, ids in skipped.items():
        opened = [stores.open_embeddings(res / "embeddings" / k / f"{split}.zarr") for k in ("a", "b", "ctrl")]
        for s in opened:
            assert s.attrs["skipped"] == ids and ids[0] not in set(s.ids)
            np.testing.assert_array_equal(s.ids, opened[0].ids)
