"""python -m embmap times: where a run's time went, from the jobs' benchmark files."""

import pytest

from embmap.__main__ import main
from embmap import timings

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root, rel, *seconds, rss=100.0):
    p = root / "benchmarks" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(HEADER + "".join(f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t0\t{s / 2}\n" for s in seconds))


def test_jobs_by_wall_time_and_totals_per_rule(tmp_path, capsys):
    _bench(tmp_path, "fit_maps/ridge/a.tsv", 2.0)
    _bench(tmp_path, "fit_maps/ridge/b.tsv", 3.0, rss=300.0)
    _bench(tmp_path, "extract/a/test.tsv", 9.0, 5.0)  # a repeated benchmark: the last line counts
    _bench(tmp_path, "similarity.tsv", 1.0)
    jobs, rules = timings.summary(tmp_path)
    assert list(jobs.columns) == timings.COLUMNS
    assert list(zip(jobs.rule, jobs.job, jobs.seconds)) == [
        ("extract", "a/test", 5.0), ("fit_maps", "ridge/b", 3.0), ("fit_maps", "ridge/a", 2.0), ("similarity", "", 1.0)]
    assert rules.loc["fit_maps"].to_dict() == {"jobs": 2, "seconds": 5.0, "slowest": 3.0, "max_rss_mb": 300.0}
    assert main(["times", str(tmp_path), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "4 jobs, 11.0 s of job wall time" in out and "45.5%" in out and "ridge/b" in out and "ridge/a" not in out


def test_a_folder_without_benchmarks_is_a_one_line_error(tmp_path, capsys):
    assert main(["times", str(tmp_path)]) == 2
    assert "no benchmark files" in capsys.readouterr().err
    with pytest.raises(timings.TimingsError):
        timings.summary(tmp_path / "nowhere")
