# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.extract(
        snakemake.wildcards.exp,
        snakemake.wildcards.network,
        snakemake.params.spec,
        snakemake.params.dataset,
        snakemake.input.manifest,
        snakemake.wildcards.split,
        snakemake.output[0],
        model_dir=snakemake.input.get("model"),
        aligned=snakemake.input.get("aligned"),
        store=snakemake.params.store,
        with_classifier=snakemake.params.with_classifier,
        normalise=snakemake.params.normalise,
        threads=snakemake.threads,
        preprocessing=snakemake.params.preprocessing,
    )
