# The one pass over the fit split, cut into shards (each reads its own row blocks of every store),
# one reduce job pooling the shards' blocks, and the fit jobs reading blocks only: one per map method
# and source network (fit_maps) or one per map method for all pairs (fit_method_maps), as the method
# declares (embmap.fit.methods); every map is maps/METHOD/SOURCE/TARGET.zarr.


rule cross_products_shard:
    input:
        unpack(P.inputs("cross_products_shard")),
    output:
        partial=temp(directory(P.pattern("shard"))),
    log:
        P.log("cross_products_shard", "{shard}"),
    benchmark:
        P.benchmark("cross_products_shard", "{shard}")
    wildcard_constraints:
        shard="[0-9]+",
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(2)
    resources:
        mem_mb=4000,
    params:
        job=P.job("cross_products_shard"),
    script:
        "../scripts/step.py"


rule cross_products:
    input:
        unpack(P.inputs("cross_products")),
    output:
        blocks=directory(P.pattern("blocks")),
    log:
        P.log("cross_products"),
    benchmark:
        P.benchmark("cross_products")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        job=P.job("cross_products"),
    script:
        "../scripts/step.py"


rule fit_maps:
    input:
        blocks=P.pattern("blocks"),
    output:
        maps=directory(P.pattern("maps")),
    log:
        P.log("fit_maps", "{method}/{source}"),
    benchmark:
        P.benchmark("fit_maps", "{method}/{source}")
    wildcard_constraints:
        method=P.method_regex("source"),
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(2)
    resources:
        mem_mb=4000,
    params:
        job=P.job("fit_maps"),
    script:
        "../scripts/step.py"


rule fit_method_maps:
    input:
        blocks=P.pattern("blocks"),
    output:
        maps=directory(P.pattern("method_maps")),
    log:
        P.log("fit_method_maps", "{method}"),
    benchmark:
        P.benchmark("fit_method_maps", "{method}")
    wildcard_constraints:
        method=P.method_regex("pairs"),
    conda:
        "../../envs/analysis.yaml"
    threads: P.threads(2)
    resources:
        mem_mb=4000,
    params:
        job=P.job("fit_method_maps"),
    script:
        "../scripts/step.py"
