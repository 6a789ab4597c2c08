# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.cross_products_shard(
        dict(snakemake.params.stores),
        snakemake.output[0],
        snakemake.params.split,
        shard=int(snakemake.wildcards.shard),
        shards=snakemake.params.shards,
        folds=snakemake.params.folds,
        precision=snakemake.params.precision,
        threads=snakemake.threads,
    )
