# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.train_network(
        snakemake.wildcards.network,
        snakemake.params.spec["train"],
        snakemake.params.dataset,
        snakemake.input.manifest,
        snakemake.output[0],
    )
