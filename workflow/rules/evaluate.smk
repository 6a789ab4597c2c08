rule evaluate_closed_set:
    input:
        unpack(eval_stores),
        maps=all_maps,
    output:
        table=report(
            f"{R}/{{exp}}/tables/closed_set.csv",
            caption="../report/closed_set.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        matrix=report(
            f"{R}/{{exp}}/tables/closed_set_matrix.csv",
            caption="../report/closed_set_matrix.rst",
            category="{exp}",
            subcategory="closed set",
        ),
    log:
        f"{R}/{{exp}}/logs/evaluate_closed_set.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/evaluate_closed_set.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 4
    resources:
        mem_mb=8000,
    params:
        stores=eval_stores,
        maps=f"{R}/{{exp}}/maps",
    script:
        "../scripts/evaluate_closed_set.py"


rule network_table:
    input:
        unpack(eval_stores),
    output:
        report(
            f"{R}/{{exp}}/tables/networks.csv",
            caption="../report/networks.rst",
            category="{exp}",
            subcategory="networks",
        ),
    log:
        f"{R}/{{exp}}/logs/network_table.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/network_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        stores=eval_stores,
        labels=lambda wc: {k: n.label for k, n in exp_of(wc).networks.items()},
    script:
        "../scripts/network_table.py"
