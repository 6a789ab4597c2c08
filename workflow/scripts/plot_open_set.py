# Thin wrapper: unpack the snakemake object and call embmap.steps.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")
from embmap import steps  # noqa: E402

with steps.logged(snakemake.log[0]):
    steps.plot_open_set(
        snakemake.input.matrix,
        [snakemake.output.png, snakemake.output.svg],
        dict(snakemake.params.labels),
        list(snakemake.params.controls),
        snakemake.params.title,
    )
