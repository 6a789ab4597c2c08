# The one pass over the fit split, cut into shards (each reads its own row blocks of every store),
# one reduce job pooling the shards' blocks, and one fit job per source network reading blocks only.


rule cross_products_shard:
    input:
        unpack(fit_stores),
    output:
        temp(directory(f"{R}/{{exp}}/fit/shards/{{shard}}.zarr")),
    log:
        f"{R}/{{exp}}/logs/cross_products/shard{{shard}}.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/cross_products_shard/{{shard}}.tsv"
    wildcard_constraints:
        shard="[0-9]+",
    conda:
        "../../envs/analysis.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        stores=fit_stores,
        split=lambda wc: exp_of(wc).fit_split,
        shards=lambda wc: exp_of(wc).shards,
        folds=lambda wc: exp_of(wc).cv_folds,
        precision=lambda wc: exp_of(wc).mapping["precision"],
    script:
        "../scripts/cross_products_shard.py"


rule cross_products:
    input:
        partials=lambda wc: P.shard_partials(wc.exp),
    output:
        directory(f"{R}/{{exp}}/fit/blocks.zarr"),
    log:
        f"{R}/{{exp}}/logs/cross_products.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/cross_products.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        stores=fit_stores,
        split=lambda wc: exp_of(wc).fit_split,
    script:
        "../scripts/cross_products.py"


rule fit_maps:
    input:
        blocks=f"{R}/{{exp}}/fit/blocks.zarr",
    output:
        directory(f"{R}/{{exp}}/maps/{{source}}"),
    log:
        f"{R}/{{exp}}/logs/fit_maps/{{source}}.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/fit_maps/{{source}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        targets=lambda wc: [b for b in exp_of(wc).networks if b != wc.source],
        alpha=lambda wc: exp_of(wc).mapping["alpha"],
        fit_split=lambda wc: exp_of(wc).fit_split,
    script:
        "../scripts/fit_maps.py"
