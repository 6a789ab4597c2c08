rule plot_closed_set:
    input:
        matrix=f"{R}/{{exp}}/tables/closed_set_matrix.csv",
    output:
        png=report(
            f"{R}/{{exp}}/figures/closed_set_heatmap.png",
            caption="../report/closed_set_heatmap.rst",
            category="{exp}",
            subcategory="closed set",
        ),
        svg=f"{R}/{{exp}}/figures/closed_set_heatmap.svg",
    log:
        f"{R}/{{exp}}/logs/plot_closed_set.log",
    benchmark:
        f"{R}/{{exp}}/benchmarks/plot_closed_set.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        labels=lambda wc: {k: n.label for k, n in exp_of(wc).networks.items()},
        controls=lambda wc: [k for k, n in exp_of(wc).networks.items() if n.control],
        title=lambda wc: f"{wc.exp}: target classifier accuracy on mapped source features",
    script:
        "../scripts/plot_closed_set.py"
