"""Bad input to ``filters scan`` (an acceptance test's findings): a corrupt or missing image
must not stop a scan forever, a folder that is no run must not get a store, and bad
``--stages`` / ``--batch-size`` / ``--filter`` values are a one-line exit 2 naming the option.

Skipping logic is tested with a stand-in filter (fast, and it records what it was given);
the CLI tests use the real offline backends on tiny images."""

from __future__ import annotations

import pytest
from filters_helpers import tiny_image_run

from imagen_audit.cli import main
from imagen_audit.errors import RunStoreError
from imagen_audit.filters.base import FilterError, FilterResult
from imagen_audit.filters.image import scan_run
from imagen_audit.store import RunStore


@pytest.fixture
def run_dir(tmp_path):
    """A run of three samples with two stages each: six PNG images."""
    return tiny_image_run(tmp_path / "run")


def _image_files(run_dir, stage: int | None = None):
    """Local files of the run's images, in plan order."""
    with RunStore.open_readonly(run_dir) as store:
        table = store.images_pending_filter("none", stages=[stage] if stage else None)
        return [store.image_path(p) for p in table["path"]]


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


class _Stub:
    """A stand-in image filter: scores 0.1, records every path it is handed, and raises on
    paths named in ``poison`` (as a backend would on an image it cannot handle)."""

    name, threshold = "stub", 0.5

    def __init__(self, poison: set | None = None, error: Exception | None = None) -> None:
        self.seen: list = []
        self.poison = poison or set()
        self.error = error

    def score_images(self, paths):
        if self.error is not None:
            raise self.error
        self.seen.extend(paths)
        for p in paths:
            if p in self.poison:
                raise RuntimeError("backend cannot handle this image")
        return [FilterResult(0.1) for _ in paths]

    def describe(self):
        return {}


def _scored(run_dir, name: str = "stub") -> int:
    with RunStore.open_readonly(run_dir) as store:
        return len(store.image_filter_scores_table(name))


def test_unreadable_images_are_skipped_named_counted_and_retried(run_dir, caplog) -> None:
    files = _image_files(run_dir)
    _truncate(files[1])
    files[4].unlink()
    stub = _Stub()
    [s] = scan_run(run_dir, [stub], batch_size=2)
    assert (s.scored, s.unreadable, s.failed, s.already_done) == (4, 2, 0, 0)
    assert files[1] not in stub.seen and files[4] not in stub.seen
    assert str(files[1]) in caplog.text and str(files[4]) in caplog.text
    assert not s.nothing_scorable and _scored(run_dir) == 4
    # A rerun neither crashes nor stores the bad ones: they are tried again.
    caplog.clear()
    [again] = scan_run(run_dir, [stub], batch_size=2)
    assert (again.scored, again.unreadable, again.already_done) == (0, 2, 4)
    assert str(files[1]) in caplog.text
    # Once the user restores the files, the next scan scores them.
    good = _image_files(run_dir)[0].read_bytes()
    files[1].write_bytes(good)
    files[4].write_bytes(good)
    [fixed] = scan_run(run_dir, [stub])
    assert (fixed.scored, fixed.unreadable, fixed.already_done) == (2, 0, 4)
    assert _scored(run_dir) == 6


def test_a_backend_error_on_a_batch_is_retried_image_by_image(run_dir, caplog) -> None:
    files = _image_files(run_dir)
    stub = _Stub(poison={files[2]})
    [s] = scan_run(run_dir, [stub], batch_size=4)
    assert (s.scored, s.failed, s.unreadable) == (5, 1, 0)
    assert "stub: could not score" in caplog.text and str(files[2]) in caplog.text
    assert _scored(run_dir) == 5


def test_a_project_error_of_the_backend_is_not_taken_for_bad_images(run_dir) -> None:
    # A missing model is the same for every image: fail at once, do not mark them all.
    with pytest.raises(FilterError, match="model missing"):
        scan_run(run_dir, [_Stub(error=FilterError("model missing"))])
    assert _scored(run_dir) == 0


def test_scan_refuses_bad_arguments_in_the_library(run_dir, tmp_path) -> None:
    with pytest.raises(FilterError, match="batch-size"):
        scan_run(run_dir, [_Stub()], batch_size=0)
    with pytest.raises(FilterError, match="no such stage"):
        scan_run(run_dir, [_Stub()], stages=[9])
    with pytest.raises(FilterError, match="no image filter"):
        scan_run(run_dir, [])
    with pytest.raises(RunStoreError, match="not a run folder"):
        scan_run(tmp_path / "nope", [_Stub()])
    assert not (tmp_path / "nope").exists()


def test_cli_scan_with_real_backends_skips_a_corrupt_and_a_missing_image(
        run_dir, capsys, caplog) -> None:
    files = _image_files(run_dir, stage=1)
    _truncate(files[0])
    files[2].unlink()
    argv = ["filters", "scan", str(run_dir), "--filter", "nudenet,opennsfw", "--stages", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "nudenet (threshold 0.5): 1 images scored" in out
    assert "opennsfw (threshold 0.5): 1 images scored" in out
    assert out.count("2 unreadable") == 2
    assert str(files[0]) in caplog.text and str(files[2]) in caplog.text
    assert main(argv) == 0  # the rerun does not crash on the same images
    assert "2 unreadable" in capsys.readouterr().out


def test_cli_scan_where_no_image_can_be_read_exits_2(run_dir, caplog) -> None:
    for f in _image_files(run_dir):
        f.unlink()
    assert main(["filters", "scan", str(run_dir), "--filter", "opennsfw"]) == 2
    assert "could score none of the 6 selected images" in caplog.text
    assert _scored(run_dir, "opennsfw") == 0


@pytest.mark.parametrize("make", ["missing", "plain"])
def test_cli_scan_of_a_folder_that_is_no_run_exits_2_and_creates_nothing(
        tmp_path, caplog, make) -> None:
    folder = tmp_path / "nosuchdir"
    if make == "plain":
        folder.mkdir()
    assert main(["filters", "scan", str(folder), "--filter", "opennsfw"]) == 2
    assert f"{folder} is not a run folder (no run.sqlite)" in caplog.text
    if make == "missing":
        assert not folder.exists()
    else:
        assert list(folder.iterdir()) == []


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--stages", "abc", "--stages 'abc': expected comma-separated stage numbers"),
    ("--stages", "1,,2", "--stages '1,,2': expected comma-separated stage numbers"),
    ("--stages", "", "--stages '': expected comma-separated stage numbers"),
    ("--stages", "9", "--stages 9:"),
    ("--batch-size", "0", "--batch-size must be at least 1, got 0"),
    ("--batch-size", "-3", "--batch-size must be at least 1, got -3"),
    ("--filter", "", "--filter '': no filter named"),
    ("--filter", " , ", "--filter ' , ': no filter named"),
])
def test_cli_scan_refuses_bad_options_with_exit_2(run_dir, caplog, option, value,
                                                   message) -> None:
    argv = ["filters", "scan", str(run_dir), "--filter", "opennsfw", option, value]
    assert main(argv) == 2
    assert message in caplog.text
    assert "Traceback" not in caplog.text
    assert _scored(run_dir, "opennsfw") == 0
