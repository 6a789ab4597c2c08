# Networks: the demo's own networks are trained first; every network's embeddings go into one store per split.


rule train_network:
    input:
        manifest=P.pattern("manifest"),
    output:
        model=directory(P.pattern("model")),
    log:
        P.log("train_network", "{network}"),
    benchmark:
        P.benchmark("train_network", "{network}")
    conda:
        "../../envs/tensorflow.yaml"
    # one thread: bit-identical weights whatever the core count (embmap.steps.TRAIN_THREADS)
    threads: 1
    resources:
        mem_mb=4000,
    params:
        job=P.job("train_network"),
    script:
        "../scripts/step.py"


rule extract:
    input:
        unpack(P.inputs("extract")),
    output:
        store=directory(P.pattern("store")),
    log:
        P.log("extract", "{network}/{split}"),
    benchmark:
        P.benchmark("extract", "{network}/{split}")
    conda:
        "../../envs/tensorflow.yaml"
    threads: 4
    resources:
        mem_mb=8000,
    params:
        job=P.job("extract"),
    script:
        "../scripts/step.py"
