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
