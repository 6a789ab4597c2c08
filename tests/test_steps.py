"""The step runner: output files appear at their paths only when their step succeeded."""

from types import SimpleNamespace

import pytest

from embmap import steps


class Named(dict):
    """Snakemake's named lists, as far as steps.run reads them."""


def _job(rule, tmp_path, **outputs):
    return SimpleNamespace(rule=rule, params=Named(job={"rows": 3}), output=Named(outputs), input=Named(),
                           wildcards=Named(), threads=1, log=[str(tmp_path / "job.log")])


@pytest.fixture
def rule():
    name = "write_two_tables"
    calls = []

    @steps.step(name)
    def write(rows: int, table: str, figure: str):
        calls.append((table, figure))
        with open(table, "w") as f:
            f.write("a,b\n" * rows)
        if steps.STEPS[name].fail_now:
            raise RuntimeError("killed mid-job")
        with open(figure, "w") as f:
            f.write("<svg/>")
        steps.log.info("wrote %s and %s", table, figure)

    write.fail_now = False
    yield name, write, calls
    del steps.STEPS[name]


def test_a_failing_step_leaves_no_output_and_no_temporary_file(tmp_path, rule):
    name, fn, calls = rule
    fn.fail_now = True
    job = _job(name, tmp_path, table=str(tmp_path / "t.csv"), figure=str(tmp_path / "f.svg"))
    with pytest.raises(RuntimeError, match="killed mid-job"):
        steps.run(job)
    assert calls[0][0] != str(tmp_path / "t.csv"), "the step must write beside its output, not at it"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.log"]


def test_a_succeeding_step_puts_its_outputs_in_place(tmp_path, rule):
    name, fn, _ = rule
    (tmp_path / "t.csv").write_text("old")
    steps.run(_job(name, tmp_path, table=str(tmp_path / "t.csv"), figure=str(tmp_path / "f.svg")))
    assert (tmp_path / "t.csv").read_text() == "a,b\n" * 3 and (tmp_path / "f.svg").read_text() == "<svg/>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.svg", "job.log", "t.csv"]
    # the log names the outputs where they are, not the temporary files the step wrote (gone now)
    assert f"wrote {tmp_path / 't.csv'} and {tmp_path / 'f.svg'}" in (tmp_path / "job.log").read_text()
    assert ".partial" not in (tmp_path / "job.log").read_text()


def test_bad_input_is_one_line_in_the_log_and_a_bug_keeps_its_traceback(tmp_path):
    from embmap.contract import StoreError

    def bad_store():
        raise StoreError("network 'a': store x.zarr: 3 of 9 labels lie outside the classifier's 2 classes")

    def bug():
        return [][1]

    for name, fn in (("raises_store_error", bad_store), ("raises_index_error", bug)):
        steps.step(name)(fn)
    try:
        with pytest.raises(SystemExit) as e:
            steps.run(_job("raises_store_error", tmp_path))
        assert e.value.code == 1
        log = (tmp_path / "job.log").read_text()
        assert "ERROR network 'a': store x.zarr: 3 of 9 labels" in log and "Traceback" not in log
        with pytest.raises(IndexError):
            steps.run(_job("raises_index_error", tmp_path))
        assert "Traceback" in (tmp_path / "job.log").read_text()
    finally:
        del steps.STEPS["raises_store_error"], steps.STEPS["raises_index_error"]


def test_a_shard_refuses_stores_whose_ids_disagree_in_its_rows_naming_network_and_row(tmp_path):
    """The pass's shards check ids with the one check every reader of several stores uses (contract.same_samples),
    over their own rows only."""
    import numpy as np

    from embmap import stores

    ids = np.array([f"img{i:03d}" for i in range(300)], dtype=object)
    other = ids.copy()
    other[257] = "elsewhere"
    x = np.zeros((300, 3), np.float32)
    for name, i in (("a", ids), ("b", other)):
        stores.write_embeddings(tmp_path / f"{name}.zarr", x, i, np.zeros(300, int), chunk_rows=64, network=name,
                                split="train")
    paths = {k: str(tmp_path / f"{k}.zarr") for k in "ab"}
    with pytest.raises(stores.StoreError, match=r"network 'b': ids of .*b\.zarr disagree with network 'a' at 1 "
                                                r"position\(s\) of rows 0\.\.299; first at row 257: 'elsewhere' vs "
                                                r"'img257'"):
        for shard in range(2):
            steps._open_shard(paths, shards=2, folds=1, shard=shard)


def test_chatter_on_standard_error_goes_to_the_job_log_and_the_jobs_own_records_to_both(tmp_path, capfd):
    """TensorFlow and absl write their start-up lines from C++ to file descriptor 2: they belong in the job's
    log, not in the terminal of a run with many jobs; the job's own records and errors are in both."""
    import logging
    import os

    def chatty():
        os.write(2, b"I0000 00:00 port.cc:153] oneDNN custom operations are on.\n")
        logging.getLogger("embmap").info("extracted 10 images")
        raise IndexError("a bug")

    steps.step("chatty")(chatty)
    try:
        with pytest.raises(IndexError):
            steps.run(_job("chatty", tmp_path))
    finally:
        del steps.STEPS["chatty"]
    terminal = capfd.readouterr().err
    log = (tmp_path / "job.log").read_text()
    assert "oneDNN" in log and "oneDNN" not in terminal
    assert "extracted 10 images" in log and "extracted 10 images" in terminal
    assert "IndexError: a bug" in log and "IndexError: a bug" in terminal
    os.write(2, b"after the job\n")  # the descriptor is the terminal's again
    assert "after the job" in capfd.readouterr().err and "after the job" not in (tmp_path / "job.log").read_text()
