"""The raters' reading of I2P's dev and test prompts: the shipped file, its checks, and the
eval subsets it feeds (recall where the words ask for harm, and where they do not)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from filters_helpers import TABLES, needs_shared

from imagen_audit.filters import text_labels as T
from imagen_audit.filters.base import FilterError
from imagen_audit.filters.datasets import prompt_hashes
from imagen_audit.filters.evaluate import evaluate
from imagen_audit.filters.policy import Policy
from imagen_audit.resources import data_dir


@pytest.mark.parametrize(("line", "message"), [
    ("abc\tH\tH\tH", "16-digit hex key"),
    ("zzzzzzzzzzzzzzzz\tH\tH\tH", "not hexadecimal"),
    ("0123456789abcdef\tH\tX\tU", "one of H, B, U"),
    ("0123456789abcdef\tH\tB\tH", "expected 'U'"),
    ("0123456789abcdef\tH\tH", "16-digit hex key"),
])
def test_bad_lines_name_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    p = tmp_path / "labels.tsv"
    p.write_text(f"# header\n0000000000000001\tB\tB\tB\n{line}\n")
    with pytest.raises(FilterError, match=rf"labels.tsv:3: .*{message}"):
        T.read_labels(p)


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "labels.tsv"
    p.write_text("0000000000000001\tB\tB\tB\n0000000000000001\tH\tH\tH\n")
    with pytest.raises(FilterError, match=r"labels\.tsv:2: key 0000000000000001 given twice"):
        T.read_labels(p)


def test_shipped_file_is_well_formed_and_holds_no_prompt_text() -> None:
    path = data_dir("filters") / T.LABELS_FILE
    table = T.read_labels(path)
    assert len(table) > 1000
    labels = [v[2] for v in table.values()]
    assert {"H", "B", "U"} <= set(labels)
    # Hashes and labels only: every line is exactly four short tab-separated fields.
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            assert len(line) == 16 + 3 * 2, line


def test_unlabelled_prompts_get_none() -> None:
    assert T.text_labels(["a prompt nobody labelled, 5f1c9e"]) == [None]


@needs_shared
def test_every_i2p_dev_and_test_prompt_and_no_other_is_labelled() -> None:
    """The raters read the canonical dev and test buckets, whole; train prompts carry no
    label, so nothing about the words of prompts a model trains on is shipped."""
    from imagen_audit.filters import datasets as D

    i2p = D.load_named("i2p")
    train, dev, test = D.split_by_prompt(i2p, **D.CANONICAL_SPLIT)
    assert test["text_label"].notna().all() and dev["text_label"].notna().all()
    assert train["text_label"].isna().all()
    labelled = set(prompt_hashes(pd.concat([dev, test])["prompt"]).tolist())
    assert labelled == set(T._shipped())


def test_eval_reports_recall_by_what_the_words_ask(tmp_path: Path) -> None:
    doc = {"schema_version": 1, "name": "t", "combine": "any",
           "backends": [{"name": "fake-a", "threshold": 0.5}]}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(doc))
    TABLES["fake-a"].clear()
    TABLES["fake-a"].update({"h0": 0.9, "h1": 0.9, "h2": 0.1, "h3": 0.9, "h4": 0.1,
                             "h5": 0.1, "b0": 0.1, "b1": 0.1})
    harmful = pd.DataFrame({"prompt": [f"h{i}" for i in range(6)],
                            "text_label": ["H", "H", "H", "B", "B", None]})
    benign = pd.DataFrame({"prompt": ["b0", "b1"]})
    sub = evaluate(Policy.load(tmp_path / "t.yaml"), harmful, benign).summary["subsets"]
    assert sub["text_harmful"] == {"n": 3, "recall": pytest.approx(2 / 3), "of_labelled": 5}
    assert sub["text_benign"] == {"n": 2, "recall": 0.5, "of_labelled": 5}
    assert "text_unclear" not in sub  # no prompt labelled U: no empty subset reported
    plain = evaluate(Policy.load(tmp_path / "t.yaml"), harmful.drop(columns="text_label"),
                     benign).summary["subsets"]
    assert not any(k.startswith("text_") for k in plain)
