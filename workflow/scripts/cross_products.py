# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.reduce_cross_products(
        list(snakemake.input.partials),
        snakemake.output[0],
        snakemake.params.split,
        dict(snakemake.params.stores),
    )
