"""Output-image filters (nudenet, opennsfw) and their scores in the run store."""

from __future__ import annotations

import json
import sqlite3

import pytest
from filters_helpers import tiny_image_run

from imagen_audit.filters.base import FilterError, FilterResult
from imagen_audit.filters.image import make_image_filter, scan_run
from imagen_audit.store import RunStore
from imagen_audit.store.schema import MIGRATIONS


@pytest.fixture
def run_dir(tmp_path):
    return tiny_image_run(tmp_path / "run")


class _Fake:
    name, threshold = "fake", 0.5

    def __init__(self) -> None:
        self.calls = 0

    def score_images(self, paths):
        self.calls += len(paths)
        return [FilterResult(0.9 if "s2" in str(p) or i == 0 else 0.1,
                             "sexual" if i == 0 else None, {"n": i})
                for i, p in enumerate(paths)]

    def describe(self):
        return {}


def test_migration_is_named_and_appended() -> None:
    names = [n for n, _ in MIGRATIONS]
    assert "0003_image_filters" in names
    if "0002_annotations" in names:
        assert names.index("0003_image_filters") > names.index("0002_annotations")


def test_scan_commits_scores_and_resumes(run_dir) -> None:
    fake = _Fake()
    [summary] = scan_run(run_dir, [fake], batch_size=2)
    assert (summary.scored, summary.already_done) == (6, 0) and fake.calls == 6
    [again] = scan_run(run_dir, [fake])
    assert (again.scored, again.already_done) == (0, 6) and fake.calls == 6
    with RunStore.open_readonly(run_dir) as store:
        table = store.image_filter_scores_table("fake")
        assert len(table) == 6 and set(table["decision"]) <= {"block", "allow"}
        assert {"image_id", "sample_id", "prompt_id", "stage", "filter", "score", "decision",
                "category", "threshold", "details"} <= set(table.columns)
        assert json.loads(table["details"].iloc[0]) == {"n": 0}
        assert store.image_filter_scores_table("other").empty
    con = sqlite3.connect(run_dir / "run.sqlite")
    with pytest.raises(sqlite3.IntegrityError):  # scores stay in [0, 1]
        con.execute("INSERT INTO image_filter_scores VALUES ('x', 'f', 2.0, 'block', NULL, NULL,"
                    " '{}', 'now')")


def test_scan_only_selected_stages(run_dir) -> None:
    fake = _Fake()
    [s] = scan_run(run_dir, [fake], stages=[2])
    assert s.scored == 3
    with RunStore.open(run_dir) as store:
        assert len(store.images_pending_filter("fake")) == 3
        assert len(store.images_pending_filter("fake", stages=[2])) == 0


def test_real_image_filters_score_a_run(run_dir) -> None:
    filters = [make_image_filter("nudenet"), make_image_filter("opennsfw", threshold=0.7)]
    summaries = scan_run(run_dir, filters, stages=[2])
    assert [s.scored for s in summaries] == [3, 3]
    with RunStore.open_readonly(run_dir) as store:
        t = store.image_filter_scores_table()
    assert set(t["filter"]) == {"nudenet", "opennsfw"}
    assert t["score"].between(0, 1).all()
    nsfw = t[t["filter"] == "opennsfw"]
    assert (nsfw["threshold"] == 0.7).all()
    d = json.loads(nsfw["details"].iloc[0])
    assert d["nsfw"] + d["sfw"] == pytest.approx(1.0, abs=1e-4)
    assert "detections" in json.loads(t[t["filter"] == "nudenet"]["details"].iloc[0])


def test_unknown_image_filter() -> None:
    with pytest.raises(FilterError, match="unknown image filter"):
        make_image_filter("clip")
    with pytest.raises(FilterError, match=r"in \[0, 1\]"):
        make_image_filter("nudenet", threshold=2)


def test_scan_command(run_dir, capsys) -> None:
    from imagen_audit.cli import main

    assert main(["filters", "scan", str(run_dir), "--filter", "opennsfw", "--stages", "1"]) == 0
    assert "opennsfw (threshold 0.5): 3 images scored" in capsys.readouterr().out
    assert main(["filters", "image", str(run_dir), "--filter", "opennsfw", "--stages", "1"]) == 0
    assert "opennsfw (threshold 0.5): 0 images scored" in capsys.readouterr().out
    assert main(["filters", "scan", str(run_dir), "--filter", "nope"]) == 2


def test_a_scan_reaches_the_report_and_the_gate(run_dir, tmp_path) -> None:
    """What filters scan found is part of the run's report (share flagged with its interval,
    by stage, the flagged images by prompt, seed and stage) and gateable by name; a run with
    only scans no longer reads "No filter evaluation"."""
    from imagen_audit.cli import main
    from imagen_audit.report.inputs import collect

    scan_run(run_dir, [_Fake()], batch_size=2)
    [res] = [f for f in collect(run_dir).filters if f.kind == "image"]
    m = res.metrics
    assert res.name == "fake" and (m["n_images"], m["flagged"]) == (6, m["flagged"])
    assert m["flagged"] == sum(1 for _ in m["flagged_images"]) and m["flagged"] >= 1
    assert m["flag_rate"] == m["flagged"] / 6 and m["flag_rate_low"] <= m["flag_rate"]
    assert set(m["flag_rate_by_stage"]) == {"base", "sr"}
    assert sum(m["flag_rate_by_stage"].values()) > 0
    assert all("seed" in k for k in m["flagged_images"])
    assert main(["report", str(run_dir)]) == 0
    html = (run_dir / "report" / "index.html").read_text()
    assert "No filter evaluation in this run" not in html and "flag_rate" in html
    policy = tmp_path / "p.yaml"
    for limit, code in ((0.9, 0), (0.1, 1)):
        policy.write_text("schema_version: 1\nchecks:\n  - metric: filter_metric\n"
                          f"    filter: fake\n    key: flag_rate\n    max: {limit}\n")
        assert main(["gate", str(run_dir), "--policy", str(policy)]) == code


def test_a_scan_at_a_new_threshold_decides_the_stored_scores_again(run_dir, capsys) -> None:
    """Scores are kept; verdicts follow the threshold asked for, so a run never mixes two
    thresholds (a comparison would read the change as the model's), and a scan without
    --threshold keeps the one the stored verdicts were made at."""
    from imagen_audit.cli import main
    from imagen_audit.filters import image as I

    fake = _Fake()
    scan_run(run_dir, [fake])
    with RunStore.open_readonly(run_dir) as store:
        before = store.image_filter_scores_table("fake")
    assert set(before["threshold"]) == {0.5}
    low = _Fake()
    low.threshold = 0.05
    [s] = scan_run(run_dir, [low])
    assert (s.scored, s.redecided) == (0, 6) and low.calls == 0  # nothing scored again
    with RunStore.open_readonly(run_dir) as store:
        after = store.image_filter_scores_table("fake")
        assert store.image_filter_thresholds("fake") == [0.05]
    assert list(after["score"]) == list(before["score"])
    assert set(after["decision"]) == {"block"} and set(after["category"]) == {I.CATEGORY}
    # The CLI keeps a run's threshold unless told otherwise.
    I.IMAGE_FILTERS["fake"] = lambda threshold=0.5: _threshold_fake(threshold)
    try:
        assert main(["filters", "scan", str(run_dir), "--filter", "fake"]) == 0
        assert "fake (threshold 0.05): 0 images scored" in capsys.readouterr().out
        assert main(["filters", "scan", str(run_dir), "--filter", "fake",
                     "--threshold", "0.5"]) == 0
        out = capsys.readouterr().out
        assert "fake (threshold 0.5)" in out and "6 stored verdicts decided again" in out
    finally:
        del I.IMAGE_FILTERS["fake"]
    with RunStore.open_readonly(run_dir) as store:
        again = store.image_filter_scores_table("fake")
    assert list(again["decision"]) == list(before["decision"])
    assert again.loc[again["decision"] == "allow", "category"].isna().all()


def _threshold_fake(threshold: float) -> _Fake:
    f = _Fake()
    f.threshold = threshold
    return f


def test_the_shipped_image_filter_gate(run_dir) -> None:
    """--policy image-filters bounds both filters' flag rates: an unscanned run is an error
    (exit 2), a scanned run whose images are flagged fails (exit 1)."""
    from imagen_audit.cli import main

    assert main(["gate", str(run_dir), "--policy", "image-filters"]) == 2
    for name in ("nudenet", "opennsfw"):
        f = _Fake()
        f.name = name
        scan_run(run_dir, [f])
    assert main(["gate", str(run_dir), "--policy", "image-filters"]) == 1


def test_scanned_runs_compare_their_image_verdicts_once(run_dir, tmp_path) -> None:
    """An image filter's verdicts are compared image by image under output-image filters, and
    not a second time as a prompt filter from the report's summary of the same scan."""
    import shutil

    from imagen_audit.compare.report import compare_runs

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    for run in (run_dir, other):
        scan_run(run, [_Fake()])
    result, _, _ = compare_runs(run_dir, other)
    assert set(result.changes["family"]) == {"image_filter"}
    assert set(result.changes["metric"]) == {"flag_rate"}
