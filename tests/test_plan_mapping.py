"""mapping.alpha lists, folds and shards: checked by the schema, resolved by the plan."""

import copy

import pytest
import yaml

from embmap import plan
from embmap.config import ConfigError, check as check_config
from helpers import ROOT

DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())


def _mapping(**m):
    c = copy.deepcopy(DEMO)
    c["experiments"]["digits"]["mapping"] = m
    c["experiments"]["digits"]["analyses"].remove("n95")  # it reads the sample sizes these mappings drop
    return c


def test_alpha_list_turns_on_cross_validation_and_shards_name_their_partials():
    c = _mapping(alpha=[0.1, 1.0, 10.0], folds=4, shards=3)
    check_config(c)
    p = plan.Plan(c, ROOT)
    exp = p.experiments["digits"]
    assert exp.alphas == [0.1, 1.0, 10.0] and exp.cv_folds == 4 and exp.shards == 3
    assert p.shard_partials("digits") == [f"results/digits/fit/shards/{j}.zarr" for j in range(3)]


def test_scalar_alpha_keeps_no_folds_and_one_shard_by_default():
    exp = plan.Plan(_mapping(alpha=2.0), ROOT).experiments["digits"]
    assert exp.alphas == [2.0] and exp.cv_folds == 1 and exp.shards == 1
    assert exp.mapping["precision"] == "float64"


@pytest.mark.parametrize("mapping,message", [
    ({"alpha": [1.0, -2.0]}, r"mapping\.alpha\.1: -2\.0 is less than the minimum"),
    ({"alpha": []}, r"mapping\.alpha: \[\] should be non-empty"),
    ({"alpha": [1.0, 1.0]}, r"mapping\.alpha: .* non-unique"),
    ({"alpha": "big"}, r"mapping\.alpha: 'big' is not of type"),
    ({"folds": 1}, r"mapping\.folds: 1 is less than the minimum of 2"),
    ({"shards": 0}, r"mapping\.shards: 0 is less than the minimum of 1"),
])
def test_bad_mapping_values_name_the_key(mapping, message):
    with pytest.raises(ConfigError, match=message):
        check_config(_mapping(**mapping))
