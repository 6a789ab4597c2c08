# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.fit_maps(
        snakemake.input.blocks,
        snakemake.wildcards.source,
        list(snakemake.params.targets),
        snakemake.params.alpha,
        snakemake.output[0],
        experiment=snakemake.wildcards.exp,
        fit_split=snakemake.params.fit_split,
        threads=snakemake.threads,
    )
