# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.evaluate_open_set(
        dict(snakemake.params.stores),
        snakemake.input.pairs,
        snakemake.output.table,
        snakemake.output.folds,
        snakemake.output.matrix,
        snakemake.output.meta,
        alpha=snakemake.params.alpha,
        precision=snakemake.params.precision,
        threads=snakemake.threads,
    )
