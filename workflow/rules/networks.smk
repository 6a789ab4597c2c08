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
    # trainings are the longest jobs: started first, the extractions of trained networks fill the
    # cores they leave, and no training left for last holds up everything after the extractions
    priority: 1
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
    # batches run `threads` at a time, each kernel on one thread: the same embeddings whatever the count
    threads: P.threads(4)
    resources:
        mem_mb=8000,
    params:
        job=P.job("extract"),
    script:
        "../scripts/step.py"


# Before anything reads them, an experiment's stores (extracted or brought) are held to each other:
# ids unique and equal across networks, labels within every classifier's classes, fit and evaluation
# splits disjoint (embmap.contract). Its params fingerprint bring-your-own stores, so one edited in
# place reruns the check and everything after it.
rule check_stores:
    input:
        unpack(P.inputs("check_stores")),
    output:
        checked=P.pattern("stores_checked"),
    log:
        P.log("check_stores"),
    benchmark:
        P.benchmark("check_stores")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        job=P.job("check_stores"),
    script:
        "../scripts/step.py"
