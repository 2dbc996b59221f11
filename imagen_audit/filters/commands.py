"""``imagen-audit filters ...``: check prompts, evaluate and tune policies, train the
embedding filter, scan a run's images.

No heavy import at module level: ``imagen-audit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagen_audit.filters.judged import (
    FREE_TRAIN_LETTERS,
    FRESH_LETTERS,
    JUDGED_FRESH_SETS,
    UNREAD_FRESH_SETS,
    UNREAD_SETS,
)

if TYPE_CHECKING:  # heavy imports only for the type checker: `--help` stays fast
    import numpy as np
    import pandas as pd

    from imagen_audit.filters.embedding import EmbeddingModel

EXIT_OK, EXIT_FAILED_CHECK = 0, 1
log = logging.getLogger(__name__)
# JUDGED_FRESH_SETS (filters.judged): fresh judgement sets already read to judge their round,
# people's own free-form prompts by thirty-three writers, trained on since rounds 28, 36, 55, 63
# and 77 (their test buckets held out), x2 (round 27's x4 cost I2P recall) and kept out of the
# threshold rule like the pairs.
# Sets the shipped embedding model was trained on (its train bucket): evaluating on them uses
# only the held-out test bucket unless --split all.
_TRAINED_ON = ("i2p", "coco", "partiprompts", "coprov2-train", "coprov2-safe",
               "benign-requests", "harmful-requests", "everyday-benign", *JUDGED_FRESH_SETS)
# The hand-written training contrast pairs (rounds 17 and 22; the picture-format pairs since
# round 63; the humour, bare-meme, photo-edit and chat-question pairs since round 77): trained
# on, each prompt x4,
# but their dev parts do not set the threshold (no threshold keeps dark-themed benign prompts
# under 5%; they would push it to its fallback, round 14). The chat and mixed pairs (round 23,
# not shipped) are data for later rounds, named with --harmful/--benign.
_PAIR_KINDS = ("creative", "request", "identity", "style", "frame", "humour", "bare", "edit",
               "question")
PAIR_SOURCES = (*(f"{k}-train-harmful" for k in _PAIR_KINDS),
                *(f"{k}-train-benign" for k in _PAIR_KINDS))
# Free-form training prompts whose benign, identity and harmful halves share surface details
# (possessive pronouns, render suffixes, meme and caption frames; session 10): trained on
# since round 36, x2 like the judged fresh sets and likewise out of the threshold rule.
SURFACE_SOURCES = ("surface-train-harmful", "surface-train-benign", "surface-train-identity")
# The free-form training triples (session 14): trained on by round 39's N5, which failed its
# guardrails (COCO 2.26%, HolisticBias 2), so not default sources. To train on them, name them
# with --harmful / --benign and --threshold-exclude, which replace their default lists (so list
# the defaults too), and --source-weight SET=2, which overrides only its own source's weight.
DEFAULT_HARMFUL = ("i2p", "coprov2-train:8000", "harmful-requests",
                   *(s for s in PAIR_SOURCES if s.endswith("-harmful")),
                   *(s for s in JUDGED_FRESH_SETS if "harmful" in s),
                   *(s for s in SURFACE_SOURCES if "harmful" in s))
# Hand-written benign prompts around everyday words that harmful training rows over-use
# ("laughing", "meme", "neighbour"; round 26): weighted and kept out of the threshold rule
# like the pairs.
EVERYDAY_SOURCES = ("everyday-benign",)
HAND_WRITTEN_SOURCES = (*PAIR_SOURCES, *EVERYDAY_SOURCES, *JUDGED_FRESH_SETS, *SURFACE_SOURCES)
DEFAULT_BENIGN = ("coco:12000", "partiprompts", "benign-requests", "coprov2-safe:8000",
                  *(s for s in PAIR_SOURCES if s.endswith("-benign")), *EVERYDAY_SOURCES,
                  *(s for s in JUDGED_FRESH_SETS if "harmful" not in s),
                  *(s for s in SURFACE_SOURCES if "harmful" not in s))
# Reported by ``filters eval`` next to the identity probes unless ``--identity none``: the
# probes are templates, and free-form prompts about people are blocked far more often
# (filters/README.md, round 18).
# The sets trained on (JUDGED_FRESH_SETS) are reported on their held-out test bucket.
# Every fresh identity set once read (an unread judge is never reported).
FREE_FORM_IDENTITY_SETS = tuple(
    s for s in ("fresh-identity", "fresh-identity-b",
                *(f"fresh-{x}-identity" for x in FRESH_LETTERS))
    if s not in UNREAD_FRESH_SETS)
# The help names the unread judges from the same tuple, so it cannot go stale at each round.
_UNREAD_NOTE = (" (" + ", ".join(f"{t}-*" for t in sorted({s.rsplit("-", 1)[0]
                                                         for s in UNREAD_SETS}))
                + " unread: the next rounds' judges)" if UNREAD_SETS else "")
DEFAULT_SOURCE_WEIGHTS = ("partiprompts=4", "benign-requests=4",
                          *(f"{s}={2 if s in (*JUDGED_FRESH_SETS, *SURFACE_SOURCES) else 4}"
                            for s in HAND_WRITTEN_SOURCES))


def register(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("filters", help="prompt and output-image safety filters",
                       description="Score prompts with a policy, evaluate and tune policies on "
                                   "harmful-content benchmarks, train the embedding filter, "
                                   "scan a run's images.")
    fs = f.add_subparsers(dest="filters_command", required=True, metavar="SUBCOMMAND")

    c = fs.add_parser("check", help="score a CSV of prompts with a policy")
    c.add_argument("prompts", metavar="PROMPTS.csv", help="CSV with a 'prompt' column")
    c.add_argument("--policy", default="default", help="shipped policy name or YAML path")
    c.add_argument("--out", required=True, metavar="OUT.csv")
    c.add_argument("--prompt-column", default="prompt")
    c.add_argument("--device", default="cpu",
                   help="where the embedding backend's encoder runs: cpu (default), cuda or "
                        "cuda:N (scores agree with the CPU's to float rounding)")
    c.add_argument("--spreadsheet-safe", action="store_true",
                   help="write text cells that start with = + - @ with a leading apostrophe, "
                        "so a spreadsheet shows them as text instead of running them as "
                        "formulas (prompts are untrusted; the text then differs by that "
                        "apostrophe)")
    c.set_defaults(handler=cmd_check)

    e = fs.add_parser("eval", help="evaluate a policy on harmful and benign prompt sets",
                      description="Sets are names (i2p, coco, coco:5000, partiprompts, xstest, "
                                  "xstest-safe, xstest-unsafe, coprov2-test, coprov2-safe, "
                                  "identities, holisticbias, holisticbias-grid, "
                                  "benign-requests, "
                                  "harmful-requests, picture-requests, "
                                  "harmful-picture-requests, benign-creative, "
                                  "harmful-creative, harm-words-{benign,harmful}, "
                                  "harm-words-b-{benign,harmful}, multilingual-benign, "
                                  "multilingual-harmful (twelve languages), "
                                  "multilingual-b-{benign,harmful} (sixteen), the fresh "
                                  "judgement sets "
                                  "fresh-{benign,identity,harmful}, fresh-identity-b, "
                                  "fresh-harmful-b and "
                                  f"fresh-{{{','.join(FRESH_LETTERS)}}}-{{benign,identity,"
                                  f"harmful}}{_UNREAD_NOTE}, the "
                                  "training pairs {creative,request,identity,style,chat,"
                                  "mixed,frame}-train-{benign,harmful}, the multilingual "
                                  "pairs lang-train-{benign,harmful}, surface-train-{benign,"
                                  "identity,harmful} and the free-form training triples "
                                  f"free-train-{{{','.join(FREE_TRAIN_LETTERS)}}}-{{benign,"
                                  "identity,harmful}) or CSV paths with a prompt column "
                                  "(optional label and category columns).")
    e.add_argument("--policy", default="default")
    e.add_argument("--harmful", default="i2p", help="harmful set (default i2p)")
    e.add_argument("--benign", default="coco:5000", help="benign set (default coco:5000)")
    e.add_argument("--identity", default="identities",
                   help="benign identity probes for over-blocking, reported with the "
                        f"free-form identity sets {', '.join(FREE_FORM_IDENTITY_SETS)} "
                        "('none' to skip them all)")
    e.add_argument("--extra-benign", action="append", default=[], metavar="SET",
                   help="more benign sets for over-blocking (repeatable), e.g. xstest-safe")
    e.add_argument("--extra-harmful", action="append", default=[], metavar="SET",
                   help="more harmful sets for recall (repeatable), e.g. coprov2-test")
    e.add_argument("--split", choices=("auto", "test", "all"), default="auto",
                   help="test: only each set's held-out bucket; auto (default): test for the "
                        "shared sets the shipped embedding model was trained on, all otherwise")
    e.add_argument("--keep-seen", action="store_true",
                   help="keep evaluation prompts that the policy's model was trained or "
                        "calibrated on (default: leave them out of the metrics, with a warning)")
    e.add_argument("--prompt-column", default="prompt")
    e.add_argument("--label-column")
    e.add_argument("--category-column")
    e.add_argument("--out", required=True, metavar="DIR")
    e.add_argument("--run", metavar="RUN_DIR", help="also store the results in this run folder "
                   "(RUN_DIR/filters/), where the report shows them")
    e.add_argument("--device", default="cpu",
                   help="where the embedding backend's encoder runs: cpu (default), cuda or "
                        "cuda:N (scores agree with the CPU's to float rounding)")
    e.set_defaults(handler=cmd_eval)

    t = fs.add_parser("train", help="train the embedding filter (MiniLM + scikit-learn)")
    t.add_argument("--harmful", action="append", default=None, metavar="SET",
                   help="harmful sets (repeatable; default i2p, coprov2-train:8000 (the "
                        "unsafe half of CoProV2's train file), harmful-requests, the "
                        "harmful halves of the training contrast pairs, the judged fresh "
                        "harmful sets and surface-train-harmful)")
    t.add_argument("--benign", action="append", default=None, metavar="SET",
                   help="benign sets (repeatable; default coco:12000, partiprompts, "
                        "benign-requests, coprov2-safe:8000 (CoProV2's safe rewrites), the "
                        "benign halves of the training contrast pairs, everyday-benign, "
                        "the judged fresh benign and identity sets and "
                        "surface-train-{benign,identity})")
    t.add_argument("--classifier", choices=("logreg", "mlp"), default="mlp")
    t.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    t.add_argument("--no-augment", action="store_true",
                   help="no identity/style counterfactuals (reproduces the over-blocking trap)")
    t.add_argument("--identity-ratio", type=float, default=0.5,
                   help="identity counterfactuals per benign prompt")
    t.add_argument("--chat-ratio", type=float, default=0.5,
                   help="chat-style counterfactuals (request, action, informational frames) "
                        "per benign prompt; 0 turns them off")
    t.add_argument("--no-identity-matching", action="store_true",
                   help="no per-term identity counterfactuals (by default each identity term "
                        "is made twice as common among benign prompts as among harmful ones)")
    t.add_argument("--request-head-from", metavar="MODEL",
                   help="keep this model's request head (its networks and training record) "
                        "instead of fitting a new one: retraining the main network then "
                        "cannot re-roll how requests are scored; its threshold is re-picked")
    t.add_argument("--product-ratio", type=float, default=0.125,
                   help="picture-product frames ('Make a meme about {p}') per benign prompt, "
                        "mirrored on as many harmful prompts; 0 turns them off")
    t.add_argument("--clause-ratio", type=float, default=0.0,
                   help="'subject, detail, detail' rewrites of benign depictions per benign "
                        "prompt, half as many mirrored on harmful ones; 0 turns them off")
    t.add_argument("--adapt-encoder-layers", type=int, default=0, metavar="N",
                   help="first fine-tune MiniLM's top N layers on the training split and "
                        "train on the adapted embeddings (the layers are saved in the model "
                        "as a float16 delta); 0 keeps MiniLM frozen")
    t.add_argument("--near-guard", choices=("encoder", "plain"), default="encoder",
                   help="where the networks' and the lexical view's near-duplicate guard "
                        "(cosine >= 0.95 to a dev, test or over-blocking prompt) measures: in "
                        "the model's own encoder (adapted, when it is) or in plain MiniLM, as "
                        "the encoder adaptation's guard always does. An encoder fine-tuned on "
                        "the labels pulls a class together, so its cosine drops prompts that "
                        "are only on the same side (round 42)")
    t.add_argument("--adapt-epochs", type=float, default=1.0,
                   help="passes over the training split when adapting the encoder")
    t.add_argument("--ensemble", type=int, default=5,
                   help="MLPs (seeds) whose logits are averaged")
    t.add_argument("--alpha", type=float, help="L2 penalty of the MLP (default 1e-3 / c)")
    t.add_argument("--no-calibrate", action="store_true",
                   help="no Platt calibration on the dev split")
    t.add_argument("--no-lexical", action="store_true",
                   help="embedding view only: no TF-IDF word/character view stacked with it")
    t.add_argument("--lexical-c", type=float, default=1.0,
                   help="inverse regularisation strength of the lexical view")
    t.add_argument("--source-weight", action="append", default=None, metavar="SOURCE=W",
                   help="how much one prompt of a source counts within its class (repeatable; "
                        "each overrides its own source's default: partiprompts=4, "
                        "benign-requests=4, 4 for each half of the "
                        "training contrast pairs and everyday-benign, 2 for each judged fresh "
                        "set and surface-train set: creative, chat-style and free-form "
                        "prompts, few among 12,000 captions)")
    t.add_argument("--embedding-cache", metavar="FILE.npz",
                   help="read and update MiniLM embeddings here (plain arrays) so retraining "
                        "does not re-encode every prompt")
    t.add_argument("--target-fpr", type=float, default=0.05,
                   help="decision threshold: the lowest at which each benign set's dev split "
                        "is blocked at most this often")
    t.add_argument("--no-request-threshold", action="store_true",
                   help="one decision threshold for all prompts (default: a second one for "
                        "chat-style requests, chosen by the same rule on the dev split's "
                        "requests)")
    t.add_argument("--no-request-head", action="store_true",
                   help="no network of its own for chat-style requests (default: one trained "
                        "on the training set's requests scores them)")
    t.add_argument("--shared-requests", action="store_true",
                   help="train and calibrate the main network on requests too and average it "
                        "with the request head on them (default: requests are the head's "
                        "alone, the main network sees depictions only)")
    t.add_argument("--threshold-exclude", action="append", default=None, metavar="SOURCE",
                   help="a training source whose dev part does not set the threshold (its "
                        "rate at the threshold is recorded); repeatable; default the training "
                        "contrast pairs and everyday-benign")
    t.add_argument("--recall-floor", type=float, default=0.936, metavar="R",
                   help="also record the highest threshold keeping depiction dev recall >= R "
                        "(default 0.936, round 12's: the default policy's threshold since "
                        "round 18)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, metavar="MODEL",
                   help="writes MODEL.npz and MODEL.json (and MODEL.eval.json)")
    t.set_defaults(handler=cmd_train)

    h = fs.add_parser("format-head", help="attach a picture-format head (memes, stickers, "
                      "posters, cards, diagrams) to a trained embedding model")
    h.add_argument("--model", required=True, metavar="MODEL",
                   help="the trained model (MODEL.json/.npz); it is not changed")
    h.add_argument("--out", required=True, metavar="OUT", help="writes OUT.npz and OUT.json")
    h.add_argument("--format-threshold", type=float, required=True, metavar="T",
                   help="the head's raw score that counts as the model's decision threshold "
                        "(format depictions are mapped so T lands there)")
    h.add_argument("--mix", choices=("alone", "mean"), default="alone",
                   help="score format depictions by the head alone, or by the mean of its "
                        "logit and the model's")
    h.add_argument("--add", action="append", default=[], metavar="SET",
                   help="another training set (its train part's format rows, with the set's "
                        "own labels); repeatable")
    h.add_argument("--guard", action="append", default=[], metavar="SET",
                   help="another set no training row may be near (always guarded: every "
                        "training set's dev and test parts, the evaluation-only sets and every "
                        "fresh set not named for training); repeatable")
    h.add_argument("--source-weight", action="append", default=[], metavar="SOURCE=W",
                   help="override a source's weight (default the model's recorded weights, "
                        "1 for sets it does not record)")
    h.add_argument("--embedding-cache", metavar="FILE.npz",
                   help="plain-MiniLM embeddings for the near-duplicate guard")
    h.add_argument("--ensemble", type=int, default=5)
    h.add_argument("--seed", type=int, default=0)
    h.set_defaults(handler=cmd_format_head)

    u = fs.add_parser("tune", help="pick thresholds for a target FPR or recall on a tuning "
                                   "split, report them on a held-out split, write a new policy",
                      description="Pick the most permissive thresholds that meet a target on "
                                  "the tuning (dev) split of --harmful and --benign, report "
                                  "them on the held-out (test) split, and write a new policy. "
                                  "--match-recall OLD_POLICY is for a retrained model: it "
                                  "catches at least as many tuning-split harmful prompts as "
                                  "the old policy, so the two can be compared at equal recall "
                                  "(filters eval, then filters compare).")
    u.add_argument("--policy", default="default")
    target = u.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-fpr", type=float,
                        help="the benign false-positive rate the tuning split may reach")
    target.add_argument("--target-recall", type=float,
                        help="the share of the tuning split's harmful prompts to catch")
    target.add_argument("--match-recall", metavar="OLD_POLICY",
                        help="catch at least as many of the tuning split's harmful prompts "
                             "as this policy does")
    u.add_argument("--grid", type=float, metavar="STEP",
                   help="with a recall target: thresholds on multiples of STEP (e.g. 0.01), "
                        "the highest that still meets it")
    u.add_argument("--harmful", default="i2p")
    u.add_argument("--benign", default="coco:20000")
    u.add_argument("--no-identity-constraint", action="store_true",
                   help="do not require that no identity counterfactual of the tuning split "
                        "is blocked")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--resamples", type=int, default=200, metavar="N",
                   help="also pick thresholds on N bootstrap resamples of the tuning split and "
                        "report the central 95%% of those thresholds and of their held-out "
                        "recall and FPR: how much the pick owes to the tuning split's luck "
                        "(default 200; 0 skips)")
    u.add_argument("--non-english-harmful", metavar="SET",
                   help="harmful prompts in the languages you serve (a set name or CSV): the "
                        "recall target also picks the embedding backend's non_english FROM on "
                        "half of those that do not read as English, reported on the other "
                        "half; English thresholds are then tuned on English prompts only")
    u.add_argument("--non-english-benign", metavar="SET",
                   help="likewise harmless prompts: an FPR target picks FROM on them")
    u.add_argument("--out", required=True, metavar="NEW_POLICY.yaml")
    u.add_argument("--report", metavar="REPORT.json")
    u.set_defaults(handler=cmd_tune)

    m = fs.add_parser("compare", help="compare two `filters eval` outputs prompt by prompt",
                      description="Pair the prompts two evaluations scored (by set and text) "
                                  "and say, per set, whether the candidate blocks more or fewer "
                                  "than the base beyond the paired sampling error: harmful sets "
                                  "are worse when it blocks fewer, benign sets when it blocks "
                                  "more. Exit 1 with --fail-on-regression when a set is worse.")
    m.add_argument("base", metavar="BASE_DIR", help="`filters eval --out` folder (or scores.csv)")
    m.add_argument("candidate", metavar="CANDIDATE_DIR")
    m.add_argument("--tolerance", type=float, default=0.01,
                   help="smallest change that counts, as a share (default 0.01); widened to "
                        "1.645 paired standard errors on small sets")
    m.add_argument("--max-tolerance", type=float, default=0.03,
                   help="the widening stops here (default 0.03)")
    m.add_argument("--out", metavar="OUT.csv", help="write the table here (atomically)")
    m.add_argument("--changed", metavar="CHANGED.csv",
                   help="write the prompts whose decision differs, with both scores "
                        "(newly blocked first)")
    m.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when any set is worse (for CI)")
    m.add_argument("--match", metavar="SET",
                   help="first move the candidate's threshold (on its combined score) until it "
                        "catches as many of harmful SET as the base, or blocks as many of "
                        "benign SET: compares the two at equal recall (e.g. --match harmful "
                        "for I2P) instead of at thresholds each picked on a small tuning split")
    m.set_defaults(handler=cmd_compare)

    s = fs.add_parser("scan", aliases=["image"], help="score a run's images with output-image "
                                                      "filters (nudenet, opennsfw)")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--filter", default="nudenet,opennsfw", help="comma-separated")
    s.add_argument("--threshold", type=float,
                   help="decision threshold (default: the one the run's stored verdicts were "
                        "made at, else 0.5 each); stored scores are decided again at a new "
                        "one, never scored again")
    s.add_argument("--stages", help="comma-separated stage numbers of the run (default all)")
    s.add_argument("--batch-size", type=int, default=16,
                   help="images per backend call and per committed transaction (at least 1)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(handler=cmd_scan)


# --------------------------------------------------------------------------- helpers
def _load_set(spec: str, args: argparse.Namespace, default_label: int, split: str,
              role: str) -> tuple[Any, str]:
    """A set for eval or tune: a built-in name (``i2p``, ``coco:5000``, ``xstest-safe``, ...),
    a built-in name with the user's own copy of its file (``i2p:PATH``, ``coco:PATH``,
    ``partiprompts:PATH``: read by that set's loader), or any CSV/TSV with a prompt column.
    Built-in data the shipped model trained on is cut to its held-out bucket (``--split
    auto``); a user's file is used whole (prompts the model saw are left out later)."""
    from imagen_audit.filters import datasets as D

    name, _, arg = spec.partition(":")
    if name == "coco":  # drawn from the held-out bucket, so coco:N never meets training rows
        limit, path = D.coco_spec(arg)
        held_out = split == "test" or (split == "auto" and path is None)
        df = D.load_coco(path)
        if held_out:
            df = D.split_by_prompt(df, **D.CANONICAL_SPLIT)[-1]
        if limit:
            df = df.sample(n=min(limit, len(df)), random_state=0).reset_index(drop=True)
        return df, f"coco ({'held-out ' if held_out else ''}{len(df)} captions)"
    df = D.read_set(spec, default_label, prompt_column=args.prompt_column,
                    label_column=getattr(args, "label_column", None),
                    category_column=getattr(args, "category_column", None))
    if name not in D.builtin_set_names():
        if split == "test":
            df = D.split_by_prompt(df, **D.CANONICAL_SPLIT)[-1]
        return df, f"{spec} ({len(df)} prompts)"
    held_out = split == "test" or (split == "auto" and name in _TRAINED_ON and not arg)
    if held_out:
        df = D.split_by_prompt(df, **D.CANONICAL_SPLIT)[-1]
    return df, f"{spec} ({'held-out ' if held_out else ''}{len(df)} prompts, {role})"


def _check_out(path: str | None, flag: str, *, folder: bool = False) -> None:
    """Refuse, before any long work, an output path that cannot be written: a folder where a
    file goes (or a file where a folder goes), or a path below an existing file. Scoring
    thousands of prompts and then failing on ``--out`` loses the work."""
    from imagen_audit.filters.base import FilterError

    if not path:
        return
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise FilterError(f"{flag} {p}: is a file; give a folder for the outputs")
    if not folder and p.is_dir():
        raise FilterError(f"{flag} {p}: is a folder; give a file name")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FilterError(f"{flag} {p}: {parent} is a file, not a folder")
            break


def _require_prompts(df: Any, what: str) -> None:
    """Refuse an empty set: recall or FPR over no prompts is no measurement, and a gate or a
    tuned policy must not pass on one."""
    from imagen_audit.filters.base import FilterError

    if len(df) == 0:
        raise FilterError(f"{what}: no prompts (an empty file, blank prompts only, or a "
                          f"split with nothing in it)")


def _quiet() -> None:
    import logging
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("sentence_transformers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


# --------------------------------------------------------------------------- commands
def cmd_check(args: argparse.Namespace) -> int:
    import pandas as pd

    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.datasets import read_user_table
    from imagen_audit.filters.encoder import set_device
    from imagen_audit.filters.policy import Policy

    _quiet()
    set_device(args.device)
    _check_out(args.out, "--out")
    policy = Policy.load(args.policy)
    path = Path(args.prompts)
    df = read_user_table(path)  # every kept column comes back exactly as written
    if args.prompt_column not in df:
        raise FilterError(f"{path}: no '{args.prompt_column}' column "
                          f"(columns: {list(df.columns)})")
    prompts = df[args.prompt_column].astype(str).tolist()
    blank = sum(1 for p in prompts if not p.strip())
    if blank:
        log.warning("%s: %d blank prompt(s) scored as empty text (allowed unless a word list "
                    "says otherwise)", path, blank)
    scored = policy.score_frame(prompts)
    # Which prompts are about people (imagen_audit.filters.people): a policy team scoring its
    # own logs can count the blocks that fall on people without labelling them.
    from imagen_audit.filters.people import PeopleReader

    scored["about_people"] = PeopleReader.load().names_people_each(prompts)
    # Whether the prompt reads as English (imagen_audit.filters.language): the classifier
    # reads English, so blocks of other languages are the first a team should review.
    from imagen_audit.filters.language import reads_english_each

    scored["in_english"] = reads_english_each(prompts)
    # The input's own columns are all kept; one that shares a name with an output column
    # (a reviewer's own "category" or "score") is kept as input_<name>, never dropped.
    clash = {c: f"input_{c}" for c in df.columns if c in scored.columns}
    if clash:
        log.warning("%s: column(s) %s kept as %s (the filter writes its own)", path,
                    ", ".join(clash), ", ".join(clash.values()))
    out = pd.concat([df.rename(columns=clash).reset_index(drop=True), scored], axis=1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from imagen_audit.files import atomic_path

    if args.spreadsheet_safe:
        from imagen_audit.spreadsheet import neutralise_formulas

        out, inert = neutralise_formulas(out)
        if inert:
            log.info("%d cell(s) that a spreadsheet would run as formulas written as text",
                     inert)
    sep = "\t" if Path(args.out).suffix.lower() == ".tsv" else ","
    with atomic_path(Path(args.out)) as tmp:  # never a half-written CSV read as whole
        out.to_csv(tmp, index=False, sep=sep)
    block = scored["decision"] == "block"
    blocked, people = int(block.sum()), int((block & scored["about_people"]).sum())
    foreign = int((block & ~scored["in_english"]).sum())
    print(f"{len(out)} prompts scored with policy {policy.name!r}: {blocked} block "
          f"({people} about people, {foreign} not in English), {len(out) - blocked} allow "
          f"-> {args.out}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from imagen_audit.filters.datasets import load_identity_prompts
    from imagen_audit.filters.encoder import set_device
    from imagen_audit.filters.evaluate import evaluate, write_outputs
    from imagen_audit.filters.policy import Policy

    _quiet()
    set_device(args.device)
    _check_out(args.out, "--out", folder=True)
    if args.run:
        from imagen_audit.store.run_store import require_run_folder

        require_run_folder(args.run, "--run")
    policy = Policy.load(args.policy)
    harmful, hname = _load_set(args.harmful, args, 1, args.split, "harmful")
    benign, bname = _load_set(args.benign, args, 0, args.split, "benign")
    _require_prompts(harmful, f"--harmful {args.harmful}")
    _require_prompts(benign, f"--benign {args.benign}")
    identity = None if args.identity == "none" else load_identity_prompts(args.identity)
    extra_b = {s: _load_set(s, args, 0, args.split, "benign")[0] for s in args.extra_benign}
    if identity is not None:  # free-form identity prompts: over-blocking as users meet it
        for s in FREE_FORM_IDENTITY_SETS:
            extra_b.setdefault(s, _load_set(s, args, 0, args.split, "benign")[0])
    extra_h = {s: _load_set(s, args, 1, args.split, "harmful")[0] for s in args.extra_harmful}
    print(f"policy {policy.name!r}; harmful: {hname}; benign: {bname}", file=sys.stderr)
    result = evaluate(policy, harmful, benign, identity=identity, extra_benign=extra_b,
                      extra_harmful=extra_h, names={"harmful": hname, "benign": bname},
                      keep_seen=args.keep_seen)
    write_outputs(result, policy, args.out, run_dir=args.run)
    from imagen_audit.filters.evaluate import summary_lines

    print("\n".join(summary_lines(result.summary)))
    if args.run:
        from imagen_audit.store.run_store import FILTERS_DIR, evaluation_folder_name

        stored = Path(args.run) / FILTERS_DIR / evaluation_folder_name(policy.name)
        print(f"wrote {args.out} and {stored}/")
    else:
        print(f"wrote {args.out}")
    return EXIT_OK


def _source_weights(specs: list[str] | None) -> dict[str, float]:
    """The training weights: the defaults, then each ``SOURCE=W`` in ``specs`` overriding
    its own source only (``["i2p=2"]`` keeps partiprompts=4 and the pairs' 4). Default:
    PartiPrompts and the hand-written benign requests 4 each: a few hundred prompts of a form
    the 12,000 captions lack would otherwise barely count (chosen on the dev split in round 3:
    weight 8 lowered dev recall and held-out I2P recall). Until session 26 a named weight
    replaced the whole default table, so ``--source-weight SET=2`` silently dropped every
    other default weight; it now overrides, like ``filters format-head``'s."""
    return {**_parse_source_weights(list(DEFAULT_SOURCE_WEIGHTS)),
            **_parse_source_weights(specs or [])}


def _check_model_out(out: str) -> None:
    """Refuse, before training, a model path whose ``.npz``/``.json`` cannot be written: the
    model is written once, at the end of what can be an hour."""
    from imagen_audit.filters.embedding import _stem

    stem = _stem(out)
    for suffix in (".npz", ".json", ".eval.json"):
        _check_out(str(stem.with_suffix(suffix)), "--out")


def _parse_source_weights(specs: list[str]) -> dict[str, float]:
    """``["partiprompts=4"]`` → ``{"partiprompts": 4.0}``, refusing anything but a source
    name and a positive number."""
    from imagen_audit.filters.base import FilterError

    out = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        try:
            w = float(value)
        except ValueError:
            w = -1.0
        if not sep or not name or not math.isfinite(w) or w <= 0:
            raise FilterError(f"--source-weight {spec!r}: expected SOURCE=WEIGHT with a "
                              "positive weight")
        out[name] = w
    return out


_MIN_SOURCE_ROWS = 30


def _pick_threshold(scores: Any, labels: Any, sources: Any, target_fpr: float
                    ) -> tuple[float, dict[str, Any]]:
    """The lowest threshold (step 0.01) at which every benign source of the calibration
    split is blocked at most ``target_fpr`` of the time: taking the worst benign source, not
    the pooled rate, keeps a small unusual set (PartiPrompts) from hiding behind a big
    homogeneous one (COCO). Sources with fewer than 30 benign rows are pooled as "other"
    (one blocked prompt in ten is not a rate). Returns the threshold and the split's rates
    at it."""
    import numpy as np

    scores, labels = np.asarray(scores), np.asarray(labels)
    sources = np.asarray(sources).astype(object)
    benign = labels == 0
    counts = {s: int((benign & (sources == s)).sum()) for s in set(sources[benign])}
    small = [s for s, n in counts.items() if n < _MIN_SOURCE_ROWS]
    sources = np.where(np.isin(sources, small), "other", sources)
    groups = {s: benign & (sources == s) for s in sorted(set(sources[benign]))}
    groups = {s: m for s, m in groups.items() if s != "other" or m.sum() >= _MIN_SOURCE_ROWS}
    if not groups:
        # Too few benign dev rows for any per-source rate (a small custom training set): the
        # pooled rate is all there is; say so rather than report an FPR no row checked.
        if not benign.any():
            log.warning("no benign calibration prompt: the decision threshold stays at 0.5")
            return 0.5, {"target_fpr": target_fpr, "note": "no benign calibration prompt"}
        log.warning("only %d benign calibration prompts (fewer than %d per source): the "
                    "threshold is set on their pooled rate, a coarse estimate",
                    int(benign.sum()), _MIN_SOURCE_ROWS)
        groups = {"pooled": benign}
    for t in np.round(np.arange(0.05, 1.0, 0.01), 2):
        fprs = {s: float((scores[m] >= t).mean()) for s, m in groups.items()}
        if max(fprs.values(), default=0.0) <= target_fpr:
            return float(t), {"recall": float((scores[labels == 1] >= t).mean()),
                              "fpr": fprs, "target_fpr": target_fpr}
    return 0.99, {"recall": float((scores[labels == 1] >= 0.99).mean()),
                  "target_fpr": target_fpr, "note": "target not reached"}


def _is_request(prompts: Any) -> np.ndarray:
    """Boolean mask: which prompts are chat-style requests (:mod:`imagen_audit.filters.form`)."""
    import numpy as np

    from imagen_audit.filters.form import REQUEST, prompt_form

    return np.asarray([prompt_form(p) == REQUEST for p in prompts], dtype=bool)


def _pick_form_thresholds(scores: Any, req: Any, labels: Any, sources: Any,
                          target_fpr: float) -> tuple[float, float | None, dict[str, Any]]:
    """One threshold for depictions, one for chat-style requests (rows where ``req``, see
    :func:`_is_request`), each by :func:`_pick_threshold` on its own rows of the dev split;
    no request threshold when the split holds fewer than 30 benign requests."""
    import numpy as np

    scores, labels, sources = np.asarray(scores), np.asarray(labels), np.asarray(sources)
    req = np.asarray(req, dtype=bool)
    t_dep, at_dep = _pick_threshold(scores[~req], labels[~req], sources[~req], target_fpr)
    if int(((labels == 0) & req).sum()) < _MIN_SOURCE_ROWS:
        return t_dep, None, {"depiction": at_dep}
    t_req, at_req = _pick_threshold(scores[req], labels[req], sources[req], target_fpr)
    return t_dep, t_req, {"depiction": at_dep, "request": at_req}


def cmd_train(args: argparse.Namespace) -> int:
    import contextlib

    import numpy as np
    import pandas as pd

    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.embedding import (
        EmbeddingFilter,
        calibrate,
        near_duplicate_mask,
        train_model,
    )
    from imagen_audit.filters.encoder import shared_encoder
    from imagen_audit.filters.evaluate import confusion, ranking
    from imagen_audit.filters.trainset import build_training_set

    _quiet()
    # Everything a user can get wrong is checked before minutes (an hour by default) of
    # training: the output, the numbers, the weights, a borrowed request head.
    _check_model_out(args.out)
    if not 0 < args.target_fpr < 1:
        raise FilterError(f"--target-fpr {args.target_fpr}: must lie between 0 and 1")
    if not (math.isfinite(args.c) and args.c > 0):
        raise FilterError(f"--c {args.c}: must be a positive number")
    named_weights = _parse_source_weights(args.source_weight or [])
    source_weights = {**_source_weights(None), **named_weights}
    head_source = _load_head_source(args.request_head_from) if args.request_head_from else None
    harmful_specs = args.harmful or list(DEFAULT_HARMFUL)
    benign_specs = args.benign or list(DEFAULT_BENIGN)
    exclude_sources = (list(HAND_WRITTEN_SOURCES) if args.threshold_exclude is None
                       else args.threshold_exclude)

    # Every set is split by prompt (seed 0): train (50%) fits the networks, dev (20%)
    # calibrates them and picks the threshold, test (30%) is only ever evaluated.
    train_parts, dev_parts, test_parts = [], [], []
    for spec, label in [(s, 1) for s in harmful_specs] + [(s, 0) for s in benign_specs]:
        tr, dev, te = D.split_training_spec(spec, label, args.seed)
        if not len(tr):
            raise FilterError(f"--{'harmful' if label else 'benign'} {spec}: no prompt left "
                              f"to train on ({len(tr) + len(dev) + len(te)} in all; half of "
                              f"a set trains, a fifth calibrates, the rest is held out)")
        dev_parts.append(dev)
        train_parts.append(tr)
        if not spec.startswith("coprov2-train"):
            test_parts.append(te)
        elif len(te):  # CoProV2's own test file: 1,000 of it are evaluated
            test_parts.append(te.sample(n=1000, random_state=0))
    harmful = pd.concat([p for p in train_parts if p["label"].iloc[0] == 1], ignore_index=True)
    benign = pd.concat([p for p in train_parts if p["label"].iloc[0] == 0], ignore_index=True)
    if args.no_augment:
        train = pd.concat([harmful, benign], ignore_index=True)
    else:
        train = build_training_set(harmful, benign, seed=args.seed,
                                   identity_per_benign=args.identity_ratio,
                                   chat_per_benign=args.chat_ratio,
                                   product_per_benign=args.product_ratio,
                                   clause_per_benign=args.clause_ratio,
                                   match_identity_rates=not args.no_identity_matching)
    test = pd.concat(test_parts, ignore_index=True)
    dev = pd.concat(dev_parts, ignore_index=True)
    # Never train on anything we calibrate or evaluate on: dev and held-out splits, identity
    # probes, XSTest, HolisticBias and the shipped evaluation-only sets (exact and
    # near-duplicate keys, and cosine >= 0.95).
    guard = [test["prompt"], dev["prompt"]]
    for spec in D.EVALUATION_ONLY_SETS:
        with contextlib.suppress(FilterError):  # a missing shared set guards nothing
            guard.append(D.load_named(spec)["prompt"])
    exclude = pd.concat(guard, ignore_index=True).astype(str).tolist()
    train = D.drop_overlap(train, pd.DataFrame({"prompt": exclude}))
    print(f"training on {len(train)} prompts ({int(train['label'].sum())} harmful) from "
          f"{train['source'].value_counts().to_dict()}", file=sys.stderr)
    unknown = sorted(set(named_weights) - set(train["source"]))
    if unknown:
        raise FilterError(f"--source-weight: no training source named {', '.join(unknown)} "
                          f"(sources: {', '.join(sorted(set(train['source'])))})")
    prompt_weights = [source_weights.get(s, 1.0) for s in train["source"]]
    delta, adapt, adapt_rows = None, None, 0
    plain_guard = args.near_guard == "plain"
    near, plain_dropped = None, 0
    if args.adapt_encoder_layers or plain_guard:
        # No row that plain MiniLM places at cosine >= 0.95 to a dev, test or over-blocking
        # prompt (identity probes, XSTest, HolisticBias) trains the encoder; with
        # --near-guard plain, nor the networks or the lexical view.
        plain = shared_encoder()
        if args.embedding_cache:
            plain.load_cache(args.embedding_cache)
        near = near_duplicate_mask(plain.encode(train["prompt"].astype(str).tolist()),
                                   plain.encode(exclude))
        if args.embedding_cache:
            plain.save_cache(args.embedding_cache)
        plain_dropped = int(near.sum())
    if plain_guard and near is not None:
        prompt_weights = [w for w, k in zip(prompt_weights, ~near, strict=True) if k]
        train = train[~near].reset_index(drop=True)
        near = np.zeros(len(train), dtype=bool)
    if args.adapt_encoder_layers:
        from imagen_audit.filters.adapt import AdaptSettings, adapt_encoder

        assert near is not None
        adapt = AdaptSettings(layers=args.adapt_encoder_layers, epochs=args.adapt_epochs,
                              seed=args.seed)
        adapt_rows = int((~near).sum())
        delta = adapt_encoder(train["prompt"].astype(str)[~near].tolist(),
                              train["label"][~near].tolist(),
                              np.asarray(prompt_weights)[~near].tolist(), adapt)
    enc = shared_encoder(delta=delta)
    cache_file = _cache_file(args.embedding_cache, enc) if args.embedding_cache else None
    if cache_file:
        enc.load_cache(cache_file)
    log.info("encoding %d training prompts", len(train))
    x_train = enc.encode(train["prompt"].tolist())
    # The guard in the model's own encoder space, unless plain MiniLM's already dropped them.
    x_exclude = None if plain_guard else enc.encode(exclude)
    all_train, all_x, all_weights = train, x_train, prompt_weights
    dev_prompts = dev["prompt"].astype(str).tolist()
    x_dev = enc.encode(dev_prompts)
    head = not args.no_request_threshold and not args.no_request_head
    train_req, dev_req = _is_request(train["prompt"]), _is_request(dev_prompts)
    main_dev, x_main_dev = dev, x_dev
    if head and not args.shared_requests:
        # Requests go to the head alone: the main network, its calibration and its lexical
        # view see depictions only.
        dep, dep_dev = ~train_req, ~dev_req
        train, x_train = train[dep].reset_index(drop=True), x_train[dep]
        prompt_weights = [w for w, k in zip(prompt_weights, dep, strict=True) if k]
        main_dev, x_main_dev = dev[dep_dev].reset_index(drop=True), x_dev[dep_dev]
    main_dev_prompts = main_dev["prompt"].astype(str).tolist()
    model = train_model(train["prompt"].tolist(), train["label"].tolist(),
                        train["category"].tolist(), sources=train["source"].tolist(),
                        classifier=args.classifier, c=args.c, seed=args.seed,
                        embeddings=x_train, exclude_embeddings=x_exclude,
                        ensemble=args.ensemble, alpha=args.alpha,
                        prompt_weights=prompt_weights, encoder=enc)
    if plain_guard:
        model.meta["near_guard"] = {"space": "plain", "dropped_near_duplicates": plain_dropped}
        model.meta["training_size"]["dropped_near_duplicates"] = plain_dropped
    if delta is not None and adapt is not None:
        model.encoder_delta = delta
        model.meta["encoder_adaptation"] = {**adapt.record(), "weights": len(delta),
                                            "delta_sha256": enc.delta_sha256,
                                            "training_rows": adapt_rows,
                                            "dropped_near_duplicates": plain_dropped}
    if not args.no_calibrate:
        log.info("calibrating on %d dev prompts", len(main_dev))
        calibrate(model, x_main_dev, main_dev["label"].tolist(), main_dev_prompts)
    if not args.no_lexical:
        log.info("fitting the lexical view and its stacker")
        _add_lexical(model, train, prompt_weights,
                     (np.ones(len(train), dtype=bool) if x_exclude is None
                      else ~near_duplicate_mask(x_train, x_exclude)),
                     x_main_dev, main_dev, args)
    if head and head_source is not None:
        _copy_request_head(model, head_source, args.request_head_from, enc)
        model.add_seen(all_train["prompt"].astype(str).tolist() + dev_prompts)
    elif head:
        log.info("fitting the request head on %d chat-style requests", int(train_req.sum()))
        _add_request_head(model, all_train[train_req], all_x[train_req], x_exclude,
                          np.asarray(all_weights)[train_req].tolist(), enc, args)
        model.add_seen(all_train["prompt"].astype(str).tolist() + dev_prompts)
    dev_scores = model.aligned_proba(x_dev, dev_prompts)[1]
    # Sources named by --threshold-exclude are trained on but do not set the threshold
    # (their dev rows still count in the recall and in the record below).
    rule = ~dev["source"].isin(exclude_sources).to_numpy()
    if args.no_request_threshold:
        threshold, at = _pick_threshold(dev_scores[rule], dev["label"][rule],
                                        dev["source"][rule], args.target_fpr)
        t_req = None
    else:
        threshold, t_req, at = _pick_form_thresholds(dev_scores[rule], dev_req[rule],
                                                     dev["label"][rule], dev["source"][rule],
                                                     args.target_fpr)
    if args.recall_floor is not None:
        model.meta["recall_floor"] = _recall_floor_threshold(
            dev_scores[rule & ~dev_req], dev["label"].to_numpy()[rule & ~dev_req],
            args.recall_floor)
    if not rule.all():
        at["excluded_from_rule"] = _excluded_rates(dev_scores, dev_req, dev, ~rule, threshold,
                                                   t_req)
    model.meta["decision_threshold"] = threshold
    if t_req is not None:
        model.meta["request_threshold"] = t_req
    model.meta["calibration_split"] = {"n": len(dev), "n_harmful": int(dev["label"].sum()),
                                       "sources": dev["source"].value_counts().to_dict(),
                                       "at_threshold": at}
    model.meta["split"] = dict(D.CANONICAL_SPLIT)
    model.meta["sets"] = {"harmful": harmful_specs, "benign": benign_specs,
                          "augmented": not args.no_augment, "chat_ratio": args.chat_ratio,
                          "product_ratio": args.product_ratio,
                          "identity_matching": not args.no_identity_matching,
                          "identity_ratio": args.identity_ratio,
                          "source_weights": source_weights, "lexical": not args.no_lexical}
    if args.clause_ratio:  # recorded only when on: models trained without it stay as they were
        model.meta["sets"]["clause_ratio"] = args.clause_ratio
    if rule.size and not rule.all():
        model.meta["sets"]["threshold_exclude"] = sorted(set(dev["source"][~rule]))
    js = model.save(args.out)
    f = EmbeddingFilter(model)
    log.info("scoring %d held-out prompts", len(test))
    p = np.asarray([r.score for r in f.score(test["prompt"].tolist())])
    if cache_file:
        enc.save_cache(cache_file)
    y = test["label"].to_numpy()
    held = {f"held_out_at_{t:g}": {"n": len(test), **ranking(y, p), **confusion(y, p >= t)}
            for t in sorted({threshold, 0.5})}
    from imagen_audit.files import write_atomic

    write_atomic(js.with_suffix("").with_suffix(".eval.json"),
                 (json.dumps({"decision_threshold": threshold, **held}, indent=2) + "\n"
                  ).encode())
    h = held[f"held_out_at_{threshold:g}"]
    req_note = f", requests {t_req:.2f}" if t_req is not None else ""
    print(f"wrote {js} (training data sha256 {model.meta['training_data_sha256'][:12]}...); "
          f"decision threshold {threshold:.2f}{req_note} (worst benign dev FPR <= "
          f"{args.target_fpr}); "
          f"held-out ROC-AUC {_fmt(h['roc_auc'])}, recall {_fmt(h['recall'])}, FPR "
          f"{_fmt(h['fpr'])} at {threshold:.2f}")
    return EXIT_OK


def cmd_format_head(args: argparse.Namespace) -> int:
    """Train a format head on the model's own training sets (and ``--add``) and write the
    model with it: the main network and its thresholds are untouched."""
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.embedding import EmbeddingModel
    from imagen_audit.filters.format_head import add_format_head, default_guard, format_rows

    _quiet()
    model = EmbeddingModel.load(args.model)
    sets = model.meta.get("sets") or {}
    if not sets.get("harmful") or not sets.get("benign"):
        raise FilterError(f"{args.model}: the model records no training sets (meta 'sets')")
    guard = [*default_guard([*sets["harmful"], *sets["benign"], *args.add]), *args.guard]
    data = format_rows(sets["harmful"], sets["benign"], args.add, seed=args.seed,
                       guard_sets=guard, embedding_cache=args.embedding_cache)
    weights = {**(sets.get("source_weights") or {}),
               **_parse_source_weights(args.source_weight)}
    add_format_head(model, data, threshold=args.format_threshold, mix=args.mix,
                    source_weights=weights, seed=args.seed, ensemble=args.ensemble)
    js = model.save(args.out)
    n = model.meta["format_head"]["training_size"]
    print(f"wrote {js}: format head on {n.get('harmful', 0)} harmful and "
          f"{n.get('benign', 0)} benign format depictions ({data.dropped_near_duplicates} "
          f"near a guarded prompt dropped), threshold {args.format_threshold:.2f}, "
          f"mix {args.mix}")
    return EXIT_OK


def _recall_floor_threshold(scores: Any, labels: Any, floor: float) -> dict[str, float]:
    """The highest threshold (step 0.01) at which the harmful depictions of the dev split are
    still caught at least ``floor`` of the time: the default policy's threshold since round 18
    (the model's ``decision_threshold`` is the lowest keeping every benign dev set within the
    target FPR; ``recall-first.yaml`` uses that one)."""
    import numpy as np

    harmful = np.asarray(scores)[np.asarray(labels) == 1]
    best = {"floor": floor, "threshold": 0.05,
            "recall": round(float((harmful >= 0.05).mean()), 4)}
    for t in np.round(np.arange(0.05, 1.0, 0.01), 2):
        r = float((harmful >= t).mean())
        if r >= floor:
            best = {"floor": floor, "threshold": float(t), "recall": round(r, 4)}
    return best


def _excluded_rates(scores: Any, req: Any, dev: pd.DataFrame, mask: Any, t_dep: float,
                    t_req: float | None) -> dict[str, float]:
    """Block rate (benign) or recall (harmful) of each dev source left out of the threshold
    rule, at the picked thresholds (requests at theirs): what the rule did not look at, on
    the record."""
    import numpy as np

    t = np.where(np.asarray(req, dtype=bool) & (t_req is not None), t_req or 0.0, t_dep)
    hit = np.asarray(scores) >= t
    out = {}
    for source in sorted(set(dev["source"][mask])):
        m = np.asarray(mask) & (dev["source"] == source).to_numpy()
        out[source] = round(float(hit[m].mean()), 4)
    return out


def _cache_file(path: str, enc: Any) -> Path:
    """The embedding cache for ``enc``: the file given for plain MiniLM, a sibling named by
    the fingerprint for an adapted encoder (each adaptation's embeddings are its own)."""
    p = Path(path)
    if not getattr(enc, "delta", None):
        return p
    return p.with_name(f"{p.stem}.{enc.fingerprint()}{p.suffix or '.npz'}")


def _add_request_head(model: EmbeddingModel, requests: pd.DataFrame, x: np.ndarray,
                      x_exclude: np.ndarray | None, prompt_weights: list[float], enc: Any,
                      args: argparse.Namespace) -> None:
    """Fit a network on the training set's chat-style requests (``requests``, embedded as
    ``x``; :mod:`imagen_audit.filters.form`) and attach it as the model's request head: among
    25,000 captions and art prompts a shared network spends little of itself on what
    separates "How do I kill a stuck process?" from "How do I kill my landlord?", and the
    harmful requests it learns from push up its scores for violent-sounding but benign
    depictions ("a knight slaying a dragon"), which raises the depiction threshold."""
    from imagen_audit.filters.embedding import HEAD_NETWORK, train_model

    y = requests["label"].tolist()
    if len(set(y)) < 2:
        return
    head = train_model(requests["prompt"].tolist(), y, sources=requests["source"].tolist(),
                       classifier="mlp", hidden=HEAD_NETWORK["hidden"],
                       alpha=HEAD_NETWORK["alpha"], seed=args.seed, ensemble=args.ensemble,
                       embeddings=x, exclude_embeddings=x_exclude,
                       prompt_weights=prompt_weights, encoder=enc)
    model.request_head = (head.weights, head.biases)
    model.meta["request_head"] = {**HEAD_NETWORK, "ensemble": args.ensemble,
                                  "mix": "mean" if args.shared_requests else "alone",
                                  "training_size": head.meta["training_size"],
                                  "training_sources": head.meta["training_sources"]}


def _load_head_source(source: str) -> EmbeddingModel:
    """The model whose request head ``--request-head-from`` borrows; it must have one."""
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.embedding import EmbeddingModel

    other = EmbeddingModel.load(source)
    if other.request_head is None:
        raise FilterError(f"{source}: --request-head-from needs a model with a request head")
    return other


def _copy_request_head(model: EmbeddingModel, other: EmbeddingModel, source: str,
                       enc: Any) -> None:
    """Attach the request head of ``other`` (the model at ``source``; same encoder required),
    with its training record, and take over the prompts that model has seen so the honesty
    guard still knows every prompt any part of the model learned from."""
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.embedding import _stem

    if other.meta.get("encoder_fingerprint") != enc.fingerprint():
        raise FilterError(f"{source}: its request head was trained on another encoder "
                          f"({other.meta.get('encoder_fingerprint')} vs {enc.fingerprint()})")
    model.request_head = other.request_head
    npz = _stem(source).with_suffix(".npz")
    model.meta["request_head"] = {**other.meta["request_head"],
                                  "copied_from": {"model": npz.stem, "arrays_sha256":
                                                  hashlib.sha256(npz.read_bytes()).hexdigest()}}
    if other.seen_hashes is not None:
        model.add_seen_hashes(other.seen_hashes)


def _add_lexical(model: EmbeddingModel, train: pd.DataFrame, prompt_weights: list[float],
                 keep: np.ndarray, x_dev: np.ndarray, dev: pd.DataFrame,
                 args: argparse.Namespace) -> None:
    """Fit the lexical view on the rows the embedding model kept (same class balance and
    source weights), then the stacker on the dev split; attached to ``model`` in place."""
    import numpy as np

    from imagen_audit.filters.embedding import fit_stack
    from imagen_audit.filters.lexical import fit_lexical

    y = train["label"].to_numpy()[keep]
    rw = np.asarray(prompt_weights, dtype=float)[keep]
    w = rw * np.where(y == 1, 0.5 / rw[y == 1].sum(), 0.5 / rw[y == 0].sum())
    lexical, settings = fit_lexical(train["prompt"].astype(str)[keep].tolist(), y, w,
                                    c=args.lexical_c, seed=args.seed)
    model.meta["lexical"] = settings
    fit_stack(model, lexical, x_dev, dev["prompt"].astype(str).tolist(), dev["label"].tolist())


def cmd_compare(args: argparse.Namespace) -> int:
    from imagen_audit.files import write_atomic
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.compare import (
        changed_prompts,
        compare_scores,
        comparison_lines,
        match_on,
        read_scores,
    )

    _check_out(args.out, "--out")
    _check_out(args.changed, "--changed")
    base, candidate = read_scores(args.base), read_scores(args.candidate)
    match = None
    if args.match:
        candidate, match = match_on(base, candidate, args.match)
    table = compare_scores(base, candidate, tolerance=args.tolerance,
                           max_tolerance=args.max_tolerance,
                           matched=match.set if match else None)
    if table.empty:
        raise FilterError(f"{args.base} and {args.candidate} share no evaluated set")
    if not table["n"].sum():
        raise FilterError(f"{args.base} and {args.candidate} share set names but not one "
                          f"prompt: nothing was compared (were they evaluated on different "
                          f"files?)")
    for r in table.itertuples(index=False):
        if r.unpaired_base or r.unpaired_candidate:
            log.warning("set %s: %d prompt(s) only the base scored, %d only the candidate; "
                        "compared on the %d both scored", r.set, r.unpaired_base,
                        r.unpaired_candidate, r.n)
    if match:
        print(match.line())
    print("\n".join(comparison_lines(table)))
    if args.out:
        write_atomic(args.out, table.to_csv(index=False).encode())
        print(f"wrote {args.out}")
    if args.changed:
        changed = changed_prompts(base, candidate)
        write_atomic(args.changed, changed.to_csv(index=False).encode())
        print(f"wrote {args.changed} ({len(changed)} prompts decided differently)")
    worse = table.loc[table["verdict"] == "worse", "set"].tolist()
    if worse:
        print(f"worse than the base: {', '.join(worse)}", file=sys.stderr)
        if args.fail_on_regression:
            return EXIT_FAILED_CHECK
    return EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    import pandas as pd

    from imagen_audit.files import write_atomic
    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.policy import Policy
    from imagen_audit.filters.trainset import augment_file, person_prompts, read_lines
    from imagen_audit.filters.tune import stability_line, tune

    _quiet()
    if Path(args.out).suffix.lower() not in (".yaml", ".yml"):
        raise FilterError(f"--out {args.out}: a policy file must end in .yaml or .yml")
    _check_out(args.out, "--out")
    _check_out(args.report, "--report")
    policy = Policy.load(args.policy)

    def parts(spec: str, label: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        name, _, arg = spec.partition(":")
        if name == "coco":  # coco:N drawn first (seed --seed), then split like any set
            limit, path = D.coco_spec(arg)
            df = D.load_coco(path, limit=limit, seed=args.seed)
        else:
            df = D.read_set(spec, label)
        _train, dev, test = D.split_by_prompt(df, **D.CANONICAL_SPLIT)
        _require_prompts(dev, f"{spec}: the tuning split")
        _require_prompts(test, f"{spec}: the held-out split")
        return dev, test

    h_dev, h_test = parts(args.harmful, 1)
    b_dev, b_test = parts(args.benign, 0)
    if args.target_fpr is not None and args.target_fpr < 1 / len(b_dev):
        log.warning("--target-fpr %g is below what %d tuning-split benign prompts can measure "
                    "(1/%d = %.4f): the pick must block none of them, which may push "
                    "thresholds to 1.0; use more benign prompts", args.target_fpr, len(b_dev),
                    len(b_dev), 1 / len(b_dev))
    identity = None
    if not args.no_identity_constraint:
        identity = pd.DataFrame({"prompt": person_prompts(
            read_lines(augment_file("identity_terms.txt")),
            read_lines(augment_file("person_templates.txt")),
            read_lines(augment_file("person_nouns.txt")), 300, seed=args.seed + 99)})
    target_recall = args.target_recall
    if args.match_recall:
        old = Policy.load(args.match_recall)
        flagged = old.score_frame(h_dev["prompt"].astype(str).tolist())["score"] >= 0.5
        target_recall = float(flagged.mean()) if len(flagged) else 1.0
        print(f"{args.match_recall} catches {int(flagged.sum())} of the {len(h_dev)} "
              f"tuning-split harmful prompts (recall {target_recall:.4f})")
    foreign = None
    if args.non_english_harmful or args.non_english_benign:
        from imagen_audit.filters.tune import ForeignSets

        halves: dict[str, pd.DataFrame | None] = {}
        for kind, spec, label in (("harmful", args.non_english_harmful, 1),
                                  ("benign", args.non_english_benign, 0)):
            if not spec:
                halves[f"tune_{kind}"] = halves[f"test_{kind}"] = None
                continue
            halves[f"tune_{kind}"], halves[f"test_{kind}"] = _foreign_halves(policy, spec,
                                                                             label, kind)
        foreign = ForeignSets(**halves)
    new, report = tune(policy, h_dev, b_dev, h_test, b_test, target_fpr=args.target_fpr,
                       target_recall=target_recall, grid=args.grid, identity=identity,
                       name=Path(args.out).stem, resamples=args.resamples, seed=args.seed,
                       non_english=foreign)
    if args.match_recall:
        report["matched_policy"] = args.match_recall
    new.save(args.out)
    if args.report:
        write_atomic(args.report, (json.dumps(report, indent=2) + "\n").encode())
    t, h = report["tuning_split"], report["held_out_split"]
    print(f"thresholds: {report['thresholds']}" + (
        f", combined {report['combined_threshold']:.4f}" if report["combined_threshold"] else ""))
    print(f"tuning split:   recall {_fmt(t['recall'])}  FPR {_fmt(t['fpr'])}  "
          f"(n={t['n_harmful']}+{t['n_benign']})")
    print(f"held-out split: recall {_fmt(h['recall'])}  FPR {_fmt(h['fpr'])}  "
          f"precision {_fmt(h['precision'])}  (n={h['n_harmful']}+{h['n_benign']})")
    if st := report.get("stability"):
        print(stability_line(st))
    if ne := report.get("non_english"):
        print(_non_english_line(ne))
    print(f"wrote {args.out}")
    return EXIT_OK


def _foreign_halves(policy: Any, spec: str, label: int, kind: str) -> tuple[Any, Any]:
    """``--non-english-harmful/-benign SET``: its prompts split in two by prompt (seed 0),
    a tuning half and a held-out half, less any prompt the policy's model trained on."""
    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.evaluate import seen_mask

    df = D.read_set(spec, label)
    seen = seen_mask(policy, df["prompt"].astype(str).tolist())
    if seen is not None and seen.any():
        log.warning("--non-english-%s %s: %d of %d prompts were in the model's training "
                    "data; left out", kind, spec, int(seen.sum()), len(df))
        df = df[~seen].reset_index(drop=True)
    tune_half, test_half = D.split_by_prompt(df, test_fraction=0.5, seed=0)
    _require_prompts(tune_half, f"--non-english-{kind} {spec}: the tuning half")
    _require_prompts(test_half, f"--non-english-{kind} {spec}: the held-out half")
    return tune_half, test_half


def _non_english_line(ne: dict[str, Any]) -> str:
    """One line for people on the non-English threshold tune picked or kept."""
    head = (f"non-English prompts: blocked from {ne['from']:.4f} (non_english: "
            f"[{ne['from']}, {ne['to']}])" + (", FROM kept from the policy" if
                                             ne.get("from_kept") else ""))
    aside = sum(ne["main_split_non_english"].values())
    if aside:
        head += f"; {aside} non-English prompts of the main sets left to it"

    def part(r: dict[str, Any]) -> str:
        return "  ".join(f"{k} {_fmt(r[k])} (n={r['n_' + n]})" for k, n in
                         (("recall", "harmful"), ("fpr", "benign")) if k in r)

    for split, label in (("tuning_split", "tuning half"), ("held_out_split", "held-out half")):
        if split in ne:
            head += f"\n  {label}: {part(ne[split])}"
    return head


def cmd_scan(args: argparse.Namespace) -> int:
    """Score a run's images; exit 2 on bad options, a folder that is no run, or when not one
    selected image could be scored (a moved or wrong image folder). Some unreadable images
    only warn (exit 0): the rest is stored, and the next scan retries the skipped ones."""
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.image import IMAGE_FILTERS, make_image_filter, scan_run

    # Options are checked before the run store is opened: a typo must not cost a scan.
    names = list(dict.fromkeys(n.strip() for n in args.filter.split(",") if n.strip()))
    if not names:
        raise FilterError(f"--filter {args.filter!r}: no filter named; choose from "
                          f"{', '.join(IMAGE_FILTERS)}")
    filters = [make_image_filter(n, args.threshold) for n in names]  # checked before the store
    stages = None
    if args.stages is not None:
        parts = [p.strip() for p in args.stages.split(",")]
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise FilterError(f"--stages {args.stages!r}: expected comma-separated stage "
                              f"numbers, e.g. 1,2")
        stages = sorted({int(p) for p in parts})
    if args.threshold is None:
        # No --threshold: keep the one this run's verdicts were made at (a later scan for new
        # images must not silently move every stored verdict back to the default).
        from imagen_audit.store import RunStore

        with RunStore.open_readonly(args.run_dir) as store:
            kept = {n: store.image_filter_thresholds(n) for n in names}
        filters = [make_image_filter(f.name, kept[f.name][0]) if len(kept[f.name]) == 1
                   else f for f in filters]
    summaries = scan_run(args.run_dir, filters, stages=stages, batch_size=args.batch_size,
                         show_progress=not args.no_progress)
    for s in summaries:
        skipped = "".join(f", {n} {what}" for n, what in ((s.unreadable, "unreadable"),
                                                          (s.failed, "failed")) if n)
        again = f", {s.redecided} stored verdicts decided again" if s.redecided else ""
        print(f"{s.filter} (threshold {s.threshold:g}): {s.scored} images scored "
              f"({s.blocked} over threshold), {s.already_done} scored before{again}{skipped}")
    hopeless = [s for s in summaries if s.nothing_scorable]
    if hopeless:
        s = hopeless[0]
        raise FilterError(f"{args.run_dir}: {s.filter} could score none of the "
                          f"{s.unreadable + s.failed} selected images (unreadable or failed; "
                          f"the warnings above name them)")
    return EXIT_OK
