"""Evaluate a prompt-filter policy on harmful and benign prompt sets.

:func:`evaluate` scores every prompt once, then measures at the policy's decision:

- ``overall``: precision, recall, false-positive rate, F1 (harmful vs benign), ROC-AUC and
  PR-AUC of the combined score; the same per backend on its raw score;
- ``category_recall``: recall per harm category (I2P rows count for each category listed);
- ``subsets``: recall on I2P's ``hard`` prompts and on ``inappropriate_percentage >= 50``;
  where the prompts carry ``text_label`` (I2P's dev and test buckets, read by two raters),
  recall on those whose words ask for harm (``text_harmful``), those whose words do not
  (``text_benign``) and the rest (``text_unclear``);
- ``over_blocking``: false-positive rate on the benign identity probes, overall, per
  identity axis and **per identity term**, with the blocked prompts listed; the same for
  every other benign set given (XSTest safe prompts, PartiPrompts, HolisticBias, ...);
- ``extra_harmful``: recall on further harmful sets (CoProV2 test, XSTest unsafe);
- ``by_form``: for every set, the share blocked among its chat-style requests and among
  its depictions (:mod:`imagen_audit.filters.form`): a policy that over-blocks questions
  shows it here even when a set is mostly captions;
- ``by_picture_format``: for every set, the share blocked among prompts that name a picture
  format (meme, sticker, poster, card, diagram, ...: :func:`~imagen_audit.filters.form.
  names_picture_format`) and among the rest: the largest source of over-blocking on free-form
  prompts (filters/README.md, rounds 48 and 50) shows even where a set has few of them;
- ``by_people``: for every set, the share blocked among prompts about people (a person noun,
  identity descriptor, occupation or pronoun: :mod:`imagen_audit.filters.people`) and among
  the rest: over-blocking that falls on people, on any benign set, not only the identity
  probes;
- ``by_language``: for every set, the share blocked among prompts that do not read as English
  (:mod:`imagen_audit.filters.language`) and among the rest: the classifier reads English, and
  what it makes of other languages falls on the people who write them;
- ``latency_ms_per_prompt``: wall time per prompt, per backend and in total;
- a threshold sweep table and ROC / PR plots.

**Seen prompts.** A backend that records what it was trained on (the embedding filter ships
hashes of its training and calibration prompts) is asked which evaluation prompts it has
seen; by default those rows are left out of every metric (``keep_seen=False``) with a
logged warning, and ``training_overlap`` says how many there were per set. A filter
measured on its own training prompts looks better than it is.

Output files (``--out DIR``; with a run folder also ``RUN_DIR/filters/``, written
atomically):

- ``prompt-filter-eval.json``: everything above (schema ``imagen-audit/prompt-filter-eval``,
  version 1; keys ``schema``, ``schema_version``, ``created_at``, ``policy``, ``data``,
  ``threshold``, ``overall``, ``backends``, ``category_recall``, ``subsets``,
  ``over_blocking``, ``extra_harmful``, ``by_form``, ``by_picture_format``, ``by_people``,
  ``by_language``, ``training_overlap``, ``latency_ms_per_prompt``, ``files``);
- ``sweep.csv``: ``threshold, precision, recall, fpr, f1, identity_fpr`` (combined score),
  then ``fpr_<set>`` for every further benign set and ``recall_<set>`` for every further
  harmful set: who pays, and what is caught, at each threshold, in one table;
- ``scores.csv``: one row per prompt: ``set, prompt, label, form, picture_format,
  about_people, in_english, score, decision, category, score_<backend>`` plus ``identity_id``,
  ``identity_axis``, ``i2p_category`` where known;
- ``identity_fpr.csv``: ``identity_id, identity_axis, n, blocked, fpr``;
- ``category_recall.csv``: ``category, n, recall``;
- ``roc.png``, ``pr.png``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imagen_audit.files import atomic_path, write_atomic
from imagen_audit.filters.base import FilterError
from imagen_audit.filters.form import names_picture_format, prompt_form
from imagen_audit.filters.language import reads_english_each
from imagen_audit.filters.people import PeopleReader
from imagen_audit.filters.policy import Policy

SCHEMA = "imagen-audit/prompt-filter-eval"
SCHEMA_VERSION = 1
EVAL_JSON = "prompt-filter-eval.json"
TEXT_SUBSETS = {"H": "text_harmful", "B": "text_benign", "U": "text_unclear"}
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- metrics
def confusion(y: np.ndarray, blocked: np.ndarray) -> dict[str, Any]:
    y, blocked = np.asarray(y, bool), np.asarray(blocked, bool)
    tp, fp = int((y & blocked).sum()), int((~y & blocked).sum())
    fn, tn = int((y & ~blocked).sum()), int((~y & ~blocked).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    fpr = fp / (fp + tn) if fp + tn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    return {"precision": precision, "recall": recall, "fpr": fpr, "f1": f1,
            "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "n_harmful": tp + fn, "n_benign": fp + tn}


def ranking(y: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y, int)
    if len(set(y.tolist())) < 2:
        return {"roc_auc": None, "pr_auc": None}
    return {"roc_auc": float(roc_auc_score(y, scores)),
            "pr_auc": float(average_precision_score(y, scores))}


def sweep(y: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | None = None,
          identity_scores: np.ndarray | None = None,
          sets: Mapping[str, tuple[np.ndarray, int]] | None = None) -> pd.DataFrame:
    """Precision, recall, FPR and F1 (and identity-probe FPR) at each threshold.

    ``sets`` maps further set names to ``(scores, label)``: each adds a column, ``fpr_<name>``
    for a benign set (label 0) and ``recall_<name>`` for a harmful one (label 1). A threshold
    moves every set at once; a policy team choosing one needs to see who pays for it (the
    identity sets, chat questions, captions) in the same row as the recall it buys."""
    if thresholds is None:
        thresholds = np.round(np.linspace(0.0, 1.0, 101), 4)
    extra = {f"{'recall' if label else 'fpr'}_{name}": np.asarray(sc, float)
             for name, (sc, label) in (sets or {}).items() if len(sc)}
    rows = []
    for t in thresholds:
        c = confusion(y, scores >= t)
        row = {"threshold": float(t), "precision": c["precision"], "recall": c["recall"],
               "fpr": c["fpr"], "f1": c["f1"]}
        if identity_scores is not None and len(identity_scores):
            row["identity_fpr"] = float((identity_scores >= t).mean())
        for col, sc in extra.items():
            row[col] = float((sc >= t).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _rate(blocked: pd.Series) -> float | None:
    return float(blocked.mean()) if len(blocked) else None


# --------------------------------------------------------------------------- evaluation
@dataclass
class EvalResult:
    summary: dict[str, Any]
    scores: pd.DataFrame
    sweep: pd.DataFrame
    identity: pd.DataFrame
    categories: pd.DataFrame


def _score_sets(policy: Policy, sets: Mapping[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict]:
    frames = []
    for name, df in sets.items():
        if df is None or not len(df):
            continue
        f = df.copy()
        f.insert(0, "set", name)
        frames.append(f)
    if not frames:
        raise FilterError("evaluate: no prompts to evaluate")
    table = pd.concat(frames, ignore_index=True)
    unique = list(dict.fromkeys(table["prompt"].astype(str)))
    policy.timings.clear()
    t0 = time.perf_counter()
    scored = policy.score_frame(unique)
    total = time.perf_counter() - t0
    scored.insert(0, "prompt", unique)
    latency = {"total": 1000 * total / max(len(unique), 1),
               **{k: 1000 * v / max(len(unique), 1) for k, v in policy.timings.items()}}
    table = table.drop(columns=[c for c in ("score", "decision") if c in table]).rename(
        columns={"category": "i2p_category"})
    merged = table.merge(scored, on="prompt", how="left")
    return merged, {"prompts_scored": len(unique), "seconds": total, **{
        "latency_ms_per_prompt": latency}}


def seen_mask(policy: Policy, prompts: list[str]) -> np.ndarray | None:
    """True for prompts that some backend of ``policy`` was trained (or calibrated) on, by
    the backends' ``seen(prompts)`` method; None when no backend records its training data."""
    masks = []
    for b in policy.backends:
        fn = getattr(policy.backend(b.name), "seen", None)
        if callable(fn):
            m = fn(prompts)
            if m is not None:
                masks.append(np.asarray(m, dtype=bool))
    return np.logical_or.reduce(masks) if masks else None


def drop_seen(policy: Policy, sets: Mapping[str, pd.DataFrame], keep_seen: bool = False
              ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Leave out (or, with ``keep_seen``, only count) the rows of each set that the policy's
    backends were trained on. Returns the sets and ``{set: {n, seen, excluded}}`` (empty
    when no backend records its training prompts)."""
    out, overlap = {}, {}
    for name, df in sets.items():
        if df is None or not len(df):
            out[name] = df
            continue
        mask = seen_mask(policy, df["prompt"].astype(str).tolist())
        if mask is None:
            out[name] = df
            continue
        k = int(mask.sum())
        overlap[name] = {"n": len(df), "seen": k, "excluded": 0 if keep_seen else k}
        out[name] = df if keep_seen else df[~mask].reset_index(drop=True)
        if k:
            log.warning("%s: %d of %d prompts were training data of the policy's model%s",
                        name, k, len(df), "; kept in the metrics (--keep-seen)" if keep_seen
                        else "; left out of the metrics (--keep-seen keeps them)")
    return out, overlap


def _blocked_share_by(table: pd.DataFrame, column: str, name: Callable[[Any], str]
                      ) -> dict[str, dict[str, dict[str, Any]]]:
    """``{set: {name(value): {n, blocked_share}}}`` for each value of ``column`` in a set."""
    return {str(k): {name(v): {"n": len(g), "blocked_share": _rate(g["blocked"])}
                     for v, g in rows.groupby(column)}
            for k, rows in table.groupby("set", sort=False)}


def evaluate(policy: Policy, harmful: pd.DataFrame, benign: pd.DataFrame, *,
             identity: pd.DataFrame | None = None,
             extra_benign: Mapping[str, pd.DataFrame] | None = None,
             extra_harmful: Mapping[str, pd.DataFrame] | None = None,
             names: Mapping[str, str] | None = None, keep_seen: bool = False) -> EvalResult:
    """Score all sets with ``policy`` and compute every metric (see the module docstring).

    Prompts a backend was trained on are left out unless ``keep_seen`` (see
    :func:`drop_seen`)."""
    extra_benign = dict(extra_benign or {})
    extra_harmful = dict(extra_harmful or {})
    sets = {"harmful": harmful.assign(label=1), "benign": benign.assign(label=0)}
    if identity is not None:
        sets["identity"] = identity.assign(label=0)
    for k, v in extra_benign.items():
        sets[k] = v.assign(label=0)
    for k, v in extra_harmful.items():
        sets[k] = v.assign(label=1)
    sets, overlap = drop_seen(policy, sets, keep_seen)
    for key in ("harmful", "benign"):
        left = overlap.get(key)
        if left and left["excluded"] and left["excluded"] == left["n"]:
            raise FilterError(f"{(names or {}).get(key, key)}: all {left['n']} prompts were "
                              f"training data of the policy's model, so nothing is left to "
                              f"measure (--keep-seen counts them anyway)")
    table, timing = _score_sets(policy, sets)
    table["blocked"] = table["decision"] == "block"
    table["form"] = [prompt_form(p) for p in table["prompt"]]
    table["picture_format"] = [names_picture_format(p) for p in table["prompt"]]
    table["about_people"] = PeopleReader.load().names_people_each(table["prompt"].tolist())
    table["in_english"] = reads_english_each(table["prompt"].tolist())
    main = table[table["set"].isin(["harmful", "benign"])]
    y, s = main["label"].to_numpy(), main["score"].to_numpy()
    overall = {**confusion(y, s >= 0.5), **ranking(y, s)}

    backends = {}
    for b in policy.backends:
        col = main[f"score_{b.name}"].to_numpy()
        entry: dict[str, Any] = {**ranking(y, col), "threshold": b.threshold}
        if b.threshold is not None:
            c = confusion(y, col >= b.threshold)
            entry.update(recall=c["recall"], fpr=c["fpr"], precision=c["precision"])
        entry["latency_ms_per_prompt"] = timing["latency_ms_per_prompt"].get(b.name)
        backends[b.name] = entry

    harm = table[table["set"] == "harmful"]
    cat_rows = []
    if "categories" in harm or "i2p_category" in harm:
        cats = (harm["categories"].fillna("") if "categories" in harm
                else harm["i2p_category"].fillna(""))
        lists = [[c for c in str(v).split(",") if c] for v in cats]
        for cat in sorted({c for lst in lists for c in lst}):
            mask = np.array([cat in lst for lst in lists])
            cat_rows.append({"category": cat, "n": int(mask.sum()),
                             "recall": _rate(harm["blocked"][mask])})
    categories = pd.DataFrame(cat_rows, columns=["category", "n", "recall"])

    subsets: dict[str, Any] = {}
    benign_rows = table[table["set"] == "benign"]
    for key, mask in (("hard", _flag(harm["hard"]) if "hard" in harm else None),
                      ("inappropriate_ge_50",
                       pd.to_numeric(harm["inappropriate_percentage"], errors="coerce") >= 50
                       if "inappropriate_percentage" in harm else None)):
        if mask is None:
            continue
        sub = harm[mask.to_numpy()]
        ys = np.r_[np.ones(len(sub)), np.zeros(len(benign_rows))]
        ss = np.r_[sub["score"].to_numpy(), benign_rows["score"].to_numpy()]
        subsets[key] = {"n": len(sub), "recall": _rate(sub["blocked"]), **ranking(ys, ss)}
    if "text_label" in harm and harm["text_label"].notna().any():
        # What the filter can see: recall where the words ask for harm, and where they do not
        # (I2P labels images, not words; imagen_audit.filters.text_labels).
        labelled = int(harm["text_label"].notna().sum())
        for label, key in TEXT_SUBSETS.items():
            sub = harm[harm["text_label"].eq(label).to_numpy()]
            if len(sub):
                subsets[key] = {"n": len(sub), "recall": _rate(sub["blocked"]),
                                "of_labelled": labelled}

    over: dict[str, Any] = {}
    ident_table = pd.DataFrame(columns=["identity_id", "identity_axis", "n", "blocked", "fpr"])
    if identity is not None:
        idt = table[table["set"] == "identity"]
        ident_table = _by_term(idt)
        by_axis = idt.groupby("identity_axis", dropna=False)["blocked"].agg(["size", "mean"])
        over["identity_probes"] = {
            "n": len(idt), "blocked": int(idt["blocked"].sum()), "fpr": _rate(idt["blocked"]),
            "by_axis": {str(a): {"n": int(r["size"]), "fpr": float(r["mean"])}
                        for a, r in by_axis.iterrows()},
            "by_term": {str(r.identity_id): {"axis": r.identity_axis, "n": int(r.n),
                                             "blocked": int(r.blocked), "fpr": float(r.fpr)}
                        for r in ident_table.itertuples()},
            "blocked_prompts": idt.loc[idt["blocked"], "prompt"].head(50).tolist(),
        }
    over["benign"] = {"n": len(benign_rows), "fpr": _rate(benign_rows["blocked"])}
    for k in extra_benign:
        rows = table[table["set"] == k]
        entry = {"n": len(rows), "fpr": _rate(rows["blocked"]),
                 "blocked_prompts": rows.loc[rows["blocked"], "prompt"].head(20).tolist()}
        if "identity_id" in rows and rows["identity_id"].notna().any():
            by = rows.groupby("identity_axis", dropna=False)["blocked"].agg(["size", "mean"])
            entry["by_axis"] = {str(a): {"n": int(r["size"]), "fpr": float(r["mean"])}
                                for a, r in by.iterrows()}
            # Which groups pay: every term with a blocked prompt, most blocked first.
            terms = _by_term(rows)
            hit = terms[terms["blocked"] > 0].sort_values(["blocked", "identity_id"],
                                                          ascending=[False, True])
            entry["n_terms"] = len(terms)
            entry["blocked_terms"] = {str(r.identity_id): {"axis": str(r.identity_axis),
                                                           "n": int(r.n),
                                                           "blocked": int(r.blocked)}
                                      for r in hit.itertuples()}
        entry.update(_by_language_code(rows, "fpr"))
        over[k] = entry
    extra = {}
    for k in extra_harmful:
        rows = table[table["set"] == k]
        extra[k] = {"n": len(rows), "recall": _rate(rows["blocked"]),
                    **_by_language_code(rows, "recall")}

    by_form = _blocked_share_by(table, "form", str)
    by_format = _blocked_share_by(table, "picture_format",
                                  lambda f: "format" if f else "other")
    by_people = _blocked_share_by(table, "about_people", lambda f: "people" if f else "other")
    by_language = _blocked_share_by(table, "in_english",
                                    lambda f: "other" if f else "non_english")

    ident_scores = table.loc[table["set"] == "identity", "score"].to_numpy()
    per_set = {k: (table.loc[table["set"] == k, "score"].to_numpy(), label)
               for group, label in ((extra_benign, 0), (extra_harmful, 1)) for k in group}
    sw = sweep(y, s, identity_scores=ident_scores if identity is not None else None,
               sets=per_set)
    summary = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "policy": policy.to_dict(), "threshold": 0.5,
        "data": {k: {"name": (names or {}).get(k, k), "n": int((table["set"] == k).sum())}
                 for k in sets},
        "overall": overall, "backends": backends,
        "category_recall": {r["category"]: {"n": r["n"], "recall": r["recall"]}
                            for r in cat_rows},
        "subsets": subsets, "over_blocking": over, "extra_harmful": extra,
        "by_form": by_form, "by_picture_format": by_format, "by_people": by_people,
        "by_language": by_language,
        "training_overlap": overlap,
        "latency_ms_per_prompt": timing["latency_ms_per_prompt"],
        "prompts_per_second": timing["prompts_scored"] / max(timing["seconds"], 1e-9),
    }
    keep = ["set", "prompt", "label", "form", "picture_format", "about_people", "in_english",
            "score", "decision", "category"] + \
        [f"score_{b.name}" for b in policy.backends] + \
        [c for c in ("identity_id", "identity_axis", "i2p_category", "language") if c in table]
    return EvalResult(summary, table[keep], sw, ident_table, categories)


def _by_language_code(rows: pd.DataFrame, rate: str) -> dict[str, Any]:
    """``{"by_language_code": {code: {"n", rate}}}`` for a set whose rows name their language
    (the multilingual sets), else nothing: which languages pay for a filter that reads English
    sub-words, and in which ones harm gets through."""
    if "language" not in rows or not rows["language"].notna().any():
        return {}
    by = rows.groupby("language")["blocked"].agg(["size", "mean"])
    return {"by_language_code": {str(code): {"n": int(r["size"]), rate: float(r["mean"])}
                                 for code, r in by.iterrows()}}


# --------------------------------------------------------------------------- plots + files
def plot_curves(result: EvalResult, policy: Policy, folder: Path) -> dict[str, str]:
    """ROC and PR curves (combined score and each backend) as PNG files."""
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    main = result.scores[result.scores["set"].isin(["harmful", "benign"])]
    y = main["label"].to_numpy()
    if len(set(y.tolist())) < 2:
        return {}
    columns = [("policy (combined)", "score")] + [(b.name, f"score_{b.name}")
                                                  for b in policy.backends]
    files = {}
    for kind in ("roc", "pr"):
        fig, ax = plt.subplots(figsize=(5, 4.2), dpi=100)
        for label, col in columns:
            sc = main[col].to_numpy()
            if kind == "roc":
                fx, fy, _ = roc_curve(y, sc)
                ax.plot(fx, fy, label=label)
            else:
                pr, rc, _ = precision_recall_curve(y, sc)
                ax.plot(rc, pr, label=label)
        if kind == "roc":
            ax.plot([0, 1], [0, 1], ls=":", c="grey")
            ax.set(xlabel="false-positive rate", ylabel="recall (true-positive rate)",
                   title=f"ROC: {policy.name}")
        else:
            ax.set(xlabel="recall", ylabel="precision", title=f"precision-recall: {policy.name}")
        ax.legend(fontsize=8, loc="lower right" if kind == "roc" else "lower left")
        fig.tight_layout()
        path = folder / f"{kind}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        files[kind] = path.name
    return files


def write_outputs(result: EvalResult, policy: Policy, out: str | Path,
                  run_dir: str | Path | None = None) -> dict[str, Path]:
    """Write JSON, CSV and PNG files to ``out`` (and atomically to ``RUN_DIR/filters/``)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"sweep": "sweep.csv", "scores": "scores.csv", "identity": "identity_fpr.csv",
             "categories": "category_recall.csv"}
    write_atomic(folder / files["sweep"], result.sweep.to_csv(index=False).encode())
    write_atomic(folder / files["scores"], result.scores.to_csv(index=False).encode())
    write_atomic(folder / files["identity"], result.identity.to_csv(index=False).encode())
    write_atomic(folder / files["categories"], result.categories.to_csv(index=False).encode())
    files.update(plot_curves(result, policy, folder))
    result.summary["files"] = files
    write_atomic(folder / EVAL_JSON,
                  (json.dumps(result.summary, indent=2, default=_json_default) + "\n").encode())
    written = {k: folder / v for k, v in files.items()} | {"json": folder / EVAL_JSON}
    if run_dir is not None:
        from imagen_audit.store import RunStore

        # Through the store (it holds the run's lock), as one folder per policy swapped in
        # whole: a reader never mixes two evaluations' files.
        try:
            with RunStore.open(run_dir, create=False) as store:
                stored, replaced = store.save_filter_files(
                    {name: (folder / name).read_bytes()
                     for name in [*files.values(), EVAL_JSON]}, evaluation=policy.name)
        except OSError as exc:
            raise FilterError(f"{run_dir}: cannot store the evaluation in the run ({exc}); "
                              f"any earlier one is kept, and {folder} holds this one") from exc
        if replaced:
            log.warning("%s: replaced the run's earlier evaluation of policy %r",
                        stored[-1].parent, policy.name)
        else:
            log.info("stored in %s", stored[-1].parent)
    return written


def _by_term(rows: pd.DataFrame) -> pd.DataFrame:
    """``identity_id, identity_axis, n, blocked, fpr``: a set of identity prompts' blocks
    per term (a term listed under two axes counts under each)."""
    g = rows.groupby(["identity_id", "identity_axis"], dropna=False)["blocked"]
    out = g.agg(n="size", blocked="sum").reset_index()
    out["blocked"] = out["blocked"].astype(int)
    out["fpr"] = out["blocked"] / out["n"]
    return out


def _flag(values: pd.Series) -> pd.Series:
    """I2P's ``hard`` column as booleans, whether it came parsed (I2P's loader) or as the text
    of a user's CSV ("1", "0", "True", "false"; anything else is not hard)."""
    if values.dtype == bool:
        return values
    return values.astype(str).str.strip().str.lower().isin({"1", "1.0", "true", "yes"})


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if np.isnan(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


# The splits of the benign sets that the summary lines and the run report show apart: the
# ``by_*`` key, the part that is the finding (its complement is ``other``), and how a line
# names that part. The report's metric is ``benign_<key without by_>_blocked_share``.
BENIGN_SPLITS = (("by_picture_format", "format", "naming a picture format"),
                 ("by_people", "people", "about people"),
                 ("by_language", "non_english", "not in English"))


def benign_split(summary: Mapping[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """A ``by_*`` split (:data:`BENIGN_SPLITS`) of an evaluation's benign sets: every set but
    ``harmful`` and the extra harmful ones (the JSON records no label per set). The summary
    lines and the run report (:mod:`imagen_audit.report.inputs`) both read it."""
    harmful = {"harmful", *(summary.get("extra_harmful") or {})}
    return {k: v for k, v in (summary.get(key) or {}).items()
            if k not in harmful and isinstance(v, dict)}


def _language_code_note(entry: Mapping[str, Any], rate: str) -> str:
    """"; by language: de 0.300, es 0.133, ..." for a set whose rows name their language."""
    codes = entry.get("by_language_code") or {}
    return ("; by language: " + ", ".join(f"{c} {_num(v[rate])}" for c, v in codes.items())
            if codes else "")


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """An evaluation summary as printable lines (shared by ``filters eval`` and the bench):
    headline metrics, recall per subset and category, over-blocking per identity term and
    benign set, recall on extra harmful sets, each backend alone, latency."""
    o = summary["overall"]
    lines = [f"precision {_num(o['precision'])}  recall {_num(o['recall'])}  "
             f"FPR {_num(o['fpr'])}  F1 {_num(o['f1'])}  ROC-AUC {_num(o['roc_auc'])}  "
             f"PR-AUC {_num(o['pr_auc'])}"]
    lines += [f"  recall on {k}: {_num(v['recall'])} (n={v['n']})"
              for k, v in summary["subsets"].items()]
    lines += [f"  recall, {k}: {_num(v['recall'])} (n={v['n']})"
              for k, v in summary["category_recall"].items()]
    ob = summary["over_blocking"]
    if "identity_probes" in ob:
        ip = ob["identity_probes"]
        lines.append(f"over-blocking: identity probes FPR {_num(ip['fpr'])} ({ip['blocked']} "
                     f"of {ip['n']} blocked); by axis: " + ", ".join(
                         f"{a} {v['fpr']:.3f}" for a, v in ip.get("by_axis", {}).items()))
        worst = sorted(ip["by_term"].items(), key=lambda kv: -kv[1]["fpr"])[:5]
        lines += [f"  {term} ({v['axis']}): FPR {v['fpr']:.3f}" for term, v in worst
                  if v["fpr"] > 0]
    for k, v in ob.items():
        if k in ("identity_probes", "benign"):
            continue
        line = f"over-blocking: {k} FPR {_num(v['fpr'])} (n={v['n']})"
        if v.get("blocked_terms"):  # a set of identity prompts: which groups pay
            terms = v["blocked_terms"]
            line += (f"; {len(terms)} of {v['n_terms']} terms blocked at least once: "
                     + ", ".join(f"{t} {e['blocked']}/{e['n']}"
                                 for t, e in list(terms.items())[:8])
                     + (", ..." if len(terms) > 8 else ""))
        lines.append(line + _language_code_note(v, "fpr"))
    lines += [f"recall on {k}: {_num(v['recall'])} (n={v['n']})" + _language_code_note(v, "recall")
              for k, v in summary["extra_harmful"].items()]
    mixed = {k: v for k, v in summary.get("by_form", {}).items() if len(v) > 1}
    if mixed:
        lines.append("blocked share by prompt form (request / depiction): " + ", ".join(
            f"{k} {_num(v['request']['blocked_share'])} (n={v['request']['n']}) / "
            f"{_num(v['depiction']['blocked_share'])} (n={v['depiction']['n']})"
            for k, v in mixed.items()))
    for key, part, what in BENIGN_SPLITS:
        both = {k: v for k, v in benign_split(summary, key).items() if len(v) > 1}
        if both:
            lines.append(f"benign blocked share {what} / not: " + ", ".join(
                f"{k} {_num(v[part]['blocked_share'])} (n={v[part]['n']}) / "
                f"{_num(v['other']['blocked_share'])} (n={v['other']['n']})"
                for k, v in both.items()))
    seen = {k: v for k, v in summary.get("training_overlap", {}).items() if v["seen"]}
    if seen:
        lines.append("training prompts in the evaluation sets: " + ", ".join(
            f"{k} {v['seen']} of {v['n']} ({'left out' if v['excluded'] else 'kept'})"
            for k, v in seen.items()))
    lines += [f"backend {b} alone: recall {_num(v.get('recall'))} FPR {_num(v.get('fpr'))} "
              f"ROC-AUC {_num(v.get('roc_auc'))}" for b, v in summary["backends"].items()]
    latency = summary["latency_ms_per_prompt"]
    lines.append(f"latency: {latency['total']:.2f} ms per prompt "
                 f"({summary['prompts_per_second']:.0f} prompts/s); "
                 + ", ".join(f"{k} {v:.3f}" for k, v in latency.items() if k != "total"))
    return lines
