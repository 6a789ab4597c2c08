"""Fixtures, hooks and the import path for every test under tests/; shared plain functions are in helpers.py."""

import os
import sys

import numpy as np
import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "workflow"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# What a test needs says how long it takes: TensorFlow, a Snakemake run, real weights or a SLURM cluster
# cost seconds to minutes each. Those tests are `slow` as well (README "Run the tests": the fast tier first).
NEEDS_TIME = ("tensorflow", "workflow", "real", "slurm")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(m) for m in NEEDS_TIME) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
