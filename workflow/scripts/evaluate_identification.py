# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.evaluate_identification(
        dict(snakemake.params.stores),
        snakemake.output.table,
        snakemake.output.matrix,
        folds=snakemake.params.folds,
        seed=snakemake.params.seed,
        alpha=snakemake.params.alpha,
        precision=snakemake.params.precision,
        threads=snakemake.threads,
    )
