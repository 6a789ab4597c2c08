rule cross_products:
    input:
        unpack(fit_stores),
    output:
        directory(f"{R}/{{exp}}/fit/blocks.zarr"),
    log:
        f"{R}/{{exp}}/logs/cross_products.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/cross_products.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 8
    resources:
        mem_mb=16000,
    params:
        stores=fit_stores,
        split=lambda wc: exp_of(wc).fit_split,
        precision=lambda wc: exp_of(wc).mapping.get("precision", "float64"),
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
