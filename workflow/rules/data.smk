# Data preparation: the manifest of every experiment's images, pairs files, face detection and crops.


rule prepare_split:
    input:
        unpack(P.inputs("prepare_split")),
    output:
        manifest=P.pattern("manifest"),
    log:
        P.log("prepare_split"),
    benchmark:
        P.benchmark("prepare_split")
    conda:
        "../../envs/tensorflow.yaml"  # image files are decoded once to find unreadable ones
    threads: P.threads(2)
    resources:
        mem_mb=2000,
    params:
        job=P.job("prepare_split"),
    script:
        "../scripts/step.py"


rule write_pairs:
    output:
        pairs=P.pattern("pairs"),
    log:
        P.log("write_pairs"),
    benchmark:
        P.benchmark("write_pairs")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        job=P.job("write_pairs"),
    script:
        "../scripts/step.py"


rule detect_faces:
    input:
        manifest=P.pattern("manifest"),
    output:
        faces=P.pattern("faces"),
    log:
        P.log("detect_faces"),
    benchmark:
        P.benchmark("detect_faces")
    conda:
        "../../envs/tensorflow.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        job=P.job("detect_faces"),
    script:
        "../scripts/step.py"


rule align_faces:
    input:
        faces=P.pattern("faces"),
    output:
        aligned=directory(P.pattern("aligned")),
    log:
        P.log("align_faces", "{align}"),
    benchmark:
        P.benchmark("align_faces", "{align}")
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        job=P.job("align_faces"),
    script:
        "../scripts/step.py"
