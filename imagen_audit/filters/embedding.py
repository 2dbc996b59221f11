"""``embedding``: MiniLM sentence embeddings + a small trained classifier, saved without pickle.

A trained model is two files side by side: ``NAME.npz`` (plain arrays, read with
``allow_pickle=False``) and ``NAME.json`` (format, array names, category names, the sha256
of the ``.npz``, the sha256 of the training data, the encoder and its fingerprint, the
training sources and sizes, scikit-learn's version). The classifier is a stack of dense
layers (``w0, b0, w1, b1, ...``; ReLU between them, a sigmoid on the single output logit),
which covers logistic regression (one layer) and scikit-learn's ``MLPClassifier``; an
optional softmax head (``cat_w``, ``cat_b``) names the most likely harm category.

An MLP is trained as an **ensemble** of several seeds whose logits are averaged: that is
itself one wider MLP (hidden units side by side, output weights divided by their number),
so the file format does not change. The averaged logit is then **calibrated** (Platt:
``a * logit + b`` fitted on a held-out calibration split, folded into the last layer), and
the model records the ``decision_threshold`` chosen on that split; a single MLP is
over-confident on prompts unlike its training data (short, chat-style, unusual scenes),
and averaging plus calibration soften exactly those scores.

The ``.npz`` also holds ``seen_hashes``: sorted 8-byte hashes of the near-duplicate keys of
every prompt the model was fitted or calibrated on
(:func:`~imagen_audit.filters.datasets.prompt_hashes`). :meth:`EmbeddingModel.seen` tells an
evaluation which of its prompts the model has seen, so ``filters eval`` can leave them out.

Optionally a model carries a second, **lexical** view
(:class:`~imagen_audit.filters.lexical.LexicalModel`: TF-IDF word and character n-grams,
logistic regression, trained on the same rows) and a **stacker** fitted on the calibration
split: ``P(harmful) = sigmoid(s0 * embedding_logit + s1 * lexical_logit + s2)`` (array
``stack``). The two views err differently (the MLP extrapolates to high scores on unusual
prompts far from its data, the word model reads them word by word), so their combination
ranks held-out prompts better than either. Such a file has ``format_version`` 2, so an
older imagen-audit refuses it instead of silently scoring without the lexical view.

Train with :func:`train_model` (or ``imagen-audit filters train``); the shipped default
model is ``filters/models/prompt-embedding.{npz,json}`` (see ``filters/README.md``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.filters.base import FilterError, FilterResult, register
from imagen_audit.filters.encoder import Encoder, shared_encoder
from imagen_audit.filters.lexical import LexicalModel

log = logging.getLogger(__name__)

FORMAT = "imagen-audit/embedding-filter"
# 2: optional lexical view + stacker; 3: optional request threshold and request head;
# 4: optional encoder delta; 5: optional format head and threshold (files without them are
# written with the lowest version that reads them whole).
FORMAT_VERSION = 5
ENCODER_PREFIX = "enc."  # array names of the encoder delta in the .npz
# The network of a head of its own (the request head, round 5; the format head, round 50): one
# hidden layer of 256, L2 penalty 0.01.
HEAD_NETWORK = {"hidden": 256, "alpha": 1e-2}
DEFAULT_MODEL = "models/prompt-embedding"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


@dataclass
class EmbeddingModel:
    """A trained classifier over sentence embeddings, as plain arrays plus metadata."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    categories: tuple[str, ...] = ()
    cat_w: np.ndarray | None = None
    cat_b: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    seen_hashes: np.ndarray | None = None
    lexical: LexicalModel | None = None
    stack: np.ndarray | None = None  # (s_embedding, s_lexical, bias), with ``lexical`` only
    # A network of its own for chat-style requests (weights, biases), trained on the request
    # rows only; it scores requests alone, or (meta request_head.mix == "mean") averaged
    # with the model's own logit (:meth:`request_proba`).
    request_head: tuple[list[np.ndarray], list[np.ndarray]] | None = None
    # float16 replacements for the encoder's top layers (:mod:`imagen_audit.filters.adapt`):
    # the model's embeddings come from MiniLM with these weights, never from plain MiniLM.
    encoder_delta: dict[str, np.ndarray] | None = None
    # A network of its own for depictions naming a picture format (:mod:`.form`, round 50),
    # scored at a threshold of its own (meta ``format_threshold``); mixed as the request head.
    format_head: tuple[list[np.ndarray], list[np.ndarray]] | None = None
    # The model description it was loaded from (:meth:`load`), named in scoring errors.
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.biases) or not self.weights:
            raise FilterError("embedding model: need one bias per weight matrix")
        _check_chain(self.weights, self.biases, "")
        if self.weights[-1].shape[1] != 1:
            raise FilterError("embedding model: the last layer must have one output")
        if self.cat_w is not None and self.cat_w.shape[1] != len(self.categories):
            raise FilterError("embedding model: category head does not match its names")
        if self.seen_hashes is not None:
            self.seen_hashes = np.unique(np.asarray(self.seen_hashes, dtype=np.uint64))
        if (self.lexical is None) != (self.stack is None):
            raise FilterError("embedding model: a lexical view and its stacker come together")
        if self.stack is not None:
            self.stack = np.asarray(self.stack, dtype=np.float64).ravel()
            if self.stack.shape != (3,):
                raise FilterError("embedding model: 'stack' must hold 3 numbers")
        for name, head in (("request", self.request_head), ("format", self.format_head)):
            if head is None:
                continue
            hw, hb = head
            if len(hw) != len(hb) or not hw or hw[0].shape[0] != self.dim or \
                    hw[-1].shape[1] != 1:
                raise FilterError(f"embedding model: the {name} head must map "
                                  f"{self.dim}-d embeddings to one output")
            _check_chain(hw, hb, f"{name} head ")

    @property
    def dim(self) -> int:
        return int(self.weights[0].shape[0])

    def logits(self, x: np.ndarray) -> np.ndarray:
        return _forward(self.weights, self.biases, x)

    def predict_proba(self, x: np.ndarray, prompts: Sequence[str] | None = None
                      ) -> np.ndarray:
        """Probability that each row is harmful. A model with a lexical view also needs the
        ``prompts`` the rows embed (its words are the second view)."""
        if x.shape[1] != self.dim:
            where = f"{self.source}: " if self.source else ""
            raise FilterError(f"{where}embedding model expects {self.dim}-d embeddings, got "
                              f"{x.shape[1]}-d from its encoder (trained with another "
                              "encoder, or array 'w0' replaced)")
        z = self.logits(x)
        if self.lexical is None or self.stack is None:
            return _sigmoid(z)
        if prompts is None or len(prompts) != len(z):
            raise FilterError("embedding model with a lexical view: pass the prompts too")
        s = self.stack
        return _sigmoid(s[0] * z + s[1] * self.lexical.logits(prompts) + s[2])

    def form_thresholds(self) -> tuple[float, float] | None:
        """``(decision_threshold, request_threshold)`` when the model keeps a threshold of its
        own for chat-style requests (:mod:`imagen_audit.filters.form`), else None."""
        t_dep, t_req = self.meta.get("decision_threshold"), self.meta.get("request_threshold")
        if t_dep is None or t_req is None:
            return None
        t_dep, t_req = float(t_dep), float(t_req)
        if not (0.0 < t_dep < 1.0 and 0.0 < t_req < 1.0):
            raise FilterError("embedding model: decision_threshold and request_threshold "
                              f"must be in (0, 1), not {t_dep} and {t_req}")
        return t_dep, t_req

    def format_threshold(self) -> float | None:
        """The raw score at which a format depiction is blocked as a depiction is at the
        decision threshold; None without a format head."""
        t = self.meta.get("format_threshold")
        if self.format_head is None or t is None:
            return None
        if not 0.0 < float(t) < 1.0 or self.meta.get("decision_threshold") is None:
            raise FilterError("embedding model: format_threshold must be in (0, 1) and "
                              f"come with a decision_threshold, not {t}")
        return float(t)

    def aligned_proba(self, x: np.ndarray, prompts: Sequence[str]
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Scores on one scale for both prompt forms: ``(aligned, raw, forms)``.

        A request's raw probability is mapped piecewise-linearly so that the request
        threshold lands on the depiction threshold (0 and 1 stay put): one policy threshold
        then decides both forms, each at the operating point its own dev split chose. With a
        format head (round 50), a depiction naming a picture format is scored by the head and
        mapped from ``format_threshold`` the same way; its form reads ``format``."""
        from imagen_audit.filters.form import FORMAT, REQUEST, is_format_depiction, prompt_form

        raw = self.predict_proba(x, prompts)
        forms = [prompt_form(p) for p in prompts]
        req = np.asarray([f == REQUEST for f in forms], dtype=bool)
        if self.request_head is not None and req.any():
            raw[req] = self.request_proba(np.asarray(x)[req], raw[req])
        t_fmt = self.format_threshold()
        fmt = np.zeros(len(forms), dtype=bool)
        if t_fmt is not None:
            fmt = np.asarray(is_format_depiction(prompts, forms), dtype=bool)
            forms = [FORMAT if f else form for f, form in zip(fmt, forms, strict=True)]
            if fmt.any():
                raw[fmt] = self._head_proba(self.format_head, "format_head",
                                            np.asarray(x)[fmt], raw[fmt])
        ts = self.form_thresholds()
        out = raw.copy()
        if ts is not None:
            out[req] = piecewise_align(raw[req], ts[1], ts[0])
        if t_fmt is not None:
            out[fmt] = piecewise_align(raw[fmt], t_fmt, float(self.meta["decision_threshold"]))
        return out, raw, forms

    def request_proba(self, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """P(harmful) of requests: the request head's own (mix ``alone``), or the mean of its
        logit and the model's (from ``proba``, the model's probability for these rows; mix
        ``mean``); ``proba`` unchanged without a head."""
        return self._head_proba(self.request_head, "request_head", x, proba)

    def _head_proba(self, head: tuple[list[np.ndarray], list[np.ndarray]] | None, key: str,
                    x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """A head's P(harmful): its own (meta ``key``.mix ``alone``) or the mean of its logit
        and the model's (``mean``); ``proba`` unchanged without the head."""
        if head is None:
            return np.asarray(proba, dtype=np.float64)
        if (self.meta.get(key) or {}).get("mix") == "alone":
            return _sigmoid(_forward(*head, x))
        p = np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1 - 1e-12)
        z = np.log(p / (1 - p))
        return _sigmoid((z + _forward(*head, x)) / 2)

    def predict_category(self, x: np.ndarray) -> list[str | None]:
        if self.cat_w is None or not self.categories:
            return [None] * len(x)
        z = np.asarray(x, dtype=np.float64) @ self.cat_w + self.cat_b
        return [self.categories[i] for i in np.argmax(z, axis=1)]

    def seen(self, prompts: Sequence[str]) -> np.ndarray | None:
        """True for each prompt whose near-duplicate key the model was trained or calibrated
        on; None when the model records no hashes (an older model file)."""
        if self.seen_hashes is None:
            return None
        from imagen_audit.filters.datasets import prompt_hashes

        return np.isin(prompt_hashes(prompts), self.seen_hashes)

    def add_seen(self, prompts: Sequence[str]) -> None:
        """Record ``prompts`` (e.g. a calibration split) among those the model has seen."""
        from imagen_audit.filters.datasets import prompt_hashes

        self.add_seen_hashes(prompt_hashes(prompts))

    def add_seen_hashes(self, hashes: np.ndarray) -> None:
        """Record prompt hashes (``datasets.prompt_hashes``), e.g. another model's record."""
        old = self.seen_hashes if self.seen_hashes is not None else np.zeros(0, np.uint64)
        self.seen_hashes = np.unique(np.concatenate([old, np.asarray(hashes, np.uint64)]))

    # ------------------------------------------------------------------ files
    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            out[f"w{i}"], out[f"b{i}"] = np.asarray(w, np.float32), np.asarray(b, np.float32)
        if self.cat_w is not None:
            out["cat_w"] = np.asarray(self.cat_w, np.float32)
            out["cat_b"] = np.asarray(self.cat_b, np.float32)
        if self.seen_hashes is not None:
            out["seen_hashes"] = np.asarray(self.seen_hashes, np.uint64)
        if self.lexical is not None and self.stack is not None:
            out.update(self.lexical.arrays())
            out["stack"] = np.asarray(self.stack, np.float64)
        for prefix, head in (("rq", self.request_head), ("fm", self.format_head)):
            for i, (w, b) in enumerate(zip(*(head or ([], [])), strict=True)):
                out[f"{prefix}_w{i}"] = np.asarray(w, np.float32)
                out[f"{prefix}_b{i}"] = np.asarray(b, np.float32)
        for name, value in (self.encoder_delta or {}).items():
            out[ENCODER_PREFIX + name] = np.asarray(value, np.float16)
        return out

    def encoder(self) -> Encoder:
        """The shared encoder this model's embeddings come from (MiniLM, adapted by the
        model's delta when it has one)."""
        return shared_encoder(delta=self.encoder_delta)

    def save(self, path: str | Path) -> Path:
        """Write ``PATH.npz`` and ``PATH.json`` as a pair; returns the JSON path.

        Both are written in full under temporary names first, then renamed, arrays first. If
        the second rename fails, the previous arrays are put back, so a model being replaced
        is either the old pair or the new one, never new arrays under an old description
        (which the hash check would then refuse: a failed retrain must not break the model
        that was there)."""
        import os
        import shutil

        from imagen_audit.files import temporary_name

        stem = _stem(path)
        stem.parent.mkdir(parents=True, exist_ok=True)
        npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
        npz_tmp, js_tmp = temporary_name(npz), temporary_name(js)
        backup = npz.with_name(f".{npz.name}.previous-{os.getpid()}")
        try:
            with open(npz_tmp, "wb") as fh:
                np.savez(fh, **self.arrays())
                fh.flush()
                os.fsync(fh.fileno())
            digest = hashlib.sha256(npz_tmp.read_bytes()).hexdigest()
            with open(js_tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(self._description(npz.name, digest), indent=2,
                                    sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            had_old = npz.is_file()
            if had_old:
                try:
                    os.link(npz, backup)
                except OSError:  # a file system without hard links
                    shutil.copy2(npz, backup)
            os.replace(npz_tmp, npz)
            try:
                os.replace(js_tmp, js)
            except OSError:
                if had_old:
                    os.replace(backup, npz)
                raise
        except OSError as exc:
            raise FilterError(f"{js}: cannot write the model ({exc.strerror or exc}); "
                              f"nothing was replaced") from exc
        finally:
            for leftover in (npz_tmp, js_tmp, backup):
                leftover.unlink(missing_ok=True)
        return js

    def _description(self, arrays_file: str, digest: str) -> dict[str, Any]:
        """The JSON half of a saved model: format, version, the arrays' file and hash, and
        the training metadata."""
        if self.format_head is not None or "format_threshold" in self.meta:
            version = FORMAT_VERSION  # an older reader would ignore the head: refuse it
        elif self.encoder_delta:
            version = 4  # an older reader would ignore the delta: refuse it
        elif self.request_head is not None or "request_threshold" in self.meta:
            version = 3
        else:
            version = 2 if self.lexical is not None else 1
        doc = {"format": FORMAT, "format_version": version, "arrays_file": arrays_file,
               "arrays_sha256": digest, "layers": len(self.weights),
               "categories": list(self.categories), **self.meta}
        if self.request_head is not None:
            doc["request_head_layers"] = len(self.request_head[0])
        if self.format_head is not None:
            doc["format_head_layers"] = len(self.format_head[0])
        return doc

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingModel:
        """Read a model saved by :meth:`save` (never unpickles anything)."""
        stem = _stem(path)
        js = stem.with_suffix(".json")
        try:
            doc = json.loads(js.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FilterError(f"{js}: embedding model not found (train one with "
                              "`imagen-audit filters train`)") from None
        except (OSError, ValueError) as exc:
            raise FilterError(f"{js}: not a readable model description ({exc})") from exc
        if not isinstance(doc, dict):
            raise FilterError(f"{js}: not a readable model description (expected a JSON "
                              f"object, found {type(doc).__name__})")
        if doc.get("format") != FORMAT:
            raise FilterError(f"{js}, field 'format': expected {FORMAT!r}")

        def whole(fld: str) -> int:
            try:
                return int(doc.get(fld, 0))
            except (TypeError, ValueError):
                raise FilterError(f"{js}, field {fld!r}: {doc.get(fld)!r} is not a whole "
                                  "number") from None

        if whole("format_version") > FORMAT_VERSION:
            raise FilterError(f"{js}, field 'format_version': made by a newer imagen-audit")
        arrays_file = str(doc.get("arrays_file", stem.name + ".npz"))
        if Path(arrays_file).name != arrays_file or arrays_file in ("", ".", ".."):
            raise FilterError(f"{js}, field 'arrays_file': {arrays_file!r} must be a file "
                              "name beside the model description")
        npz = js.with_name(arrays_file)
        try:
            blob = npz.read_bytes()
        except OSError as exc:
            raise FilterError(f"{npz}: cannot read model arrays ({exc})") from exc
        if not doc.get("arrays_sha256"):
            raise FilterError(f"{js}, field 'arrays_sha256': missing, so {npz.name} cannot be "
                              "checked (re-save the model with `filters train`)")
        if hashlib.sha256(blob).hexdigest() != doc["arrays_sha256"]:
            raise FilterError(f"{npz}: arrays do not match the sha256 in {js.name} "
                              "(corrupt or replaced file)")
        import io
        import zipfile

        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as arrs:
                data = {k: arrs[k] for k in arrs.files}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise FilterError(f"{npz}: not a plain-array model file ({exc})") from exc
        bad = sorted(k for k, a in data.items()
                     if a.dtype.kind == "f" and not np.isfinite(a).all())
        if bad:
            raise FilterError(f"{npz}: array {bad[0]!r} holds non-finite values (NaN or "
                              "infinity): a diverged or damaged model")
        n = whole("layers")
        try:
            weights = [data[f"w{i}"] for i in range(n)]
            biases = [data[f"b{i}"] for i in range(n)]
        except KeyError as exc:
            raise FilterError(f"{npz}: array {exc} missing") from None
        meta = {k: v for k, v in doc.items() if k not in
                ("format", "format_version", "arrays_file", "arrays_sha256", "layers",
                 "categories", "request_head_layers", "format_head_layers")}
        head = _load_head(data, doc, "request", "rq", npz)
        format_head = _load_head(data, doc, "format", "fm", npz)
        seen = data.get("seen_hashes")
        if seen is not None and (seen.dtype != np.uint64 or seen.ndim != 1):
            raise FilterError(f"{npz}: array 'seen_hashes' must be a 1-d uint64 array")
        lexical, stack = None, data.get("stack")
        if "lex_vocab" in data or stack is not None:
            lexical = LexicalModel.from_arrays(data, str(npz))
            if stack is None:
                raise FilterError(f"{npz}: array 'stack' missing (lexical view without its "
                                  "stacker)")
        delta = {k[len(ENCODER_PREFIX):]: v for k, v in data.items()
                 if k.startswith(ENCODER_PREFIX)}
        if delta and any(v.dtype != np.float16 for v in delta.values()):
            raise FilterError(f"{npz}: encoder delta arrays ({ENCODER_PREFIX}*) must be "
                              "float16")
        try:
            return cls(weights, biases, tuple(doc.get("categories", ())), data.get("cat_w"),
                       data.get("cat_b"), meta, seen, lexical, stack, head, delta or None,
                       format_head, source=str(js))
        except FilterError as exc:  # the arrays do not fit together: name the file
            raise FilterError(f"{npz}: {exc}") from None


def _check_chain(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                 what: str) -> None:
    """Each layer's matrix must be 2-d, feed the next one and carry a bias of its width: a
    replaced array would otherwise fail deep inside numpy, at scoring time, naming nothing."""
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if w.ndim != 2 or b.shape != (w.shape[1],):
            raise FilterError(f"embedding model: {what}layer {i} has a {w.shape} matrix and "
                              f"a {b.shape} bias, which do not fit together")
        if i and weights[i - 1].shape[1] != w.shape[0]:
            raise FilterError(f"embedding model: {what}layer {i - 1} gives "
                              f"{weights[i - 1].shape[1]} values but layer {i} takes "
                              f"{w.shape[0]}")


def _load_head(data: dict[str, np.ndarray], doc: dict[str, Any], name: str, prefix: str,
               npz: Path) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The ``name`` head's arrays (``PREFIX_w0``...), as many layers as the JSON says."""
    n = int(doc.get(f"{name}_head_layers", 0))
    if not n:
        return None
    try:
        return ([data[f"{prefix}_w{i}"] for i in range(n)],
                [data[f"{prefix}_b{i}"] for i in range(n)])
    except KeyError as exc:
        raise FilterError(f"{npz}: array {exc} of the {name} head missing") from None


def _forward(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
             x: np.ndarray) -> np.ndarray:
    """Output logit of a ReLU network given as plain arrays."""
    h = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return h[:, 0]


def piecewise_align(p: np.ndarray, source: float, target: float) -> np.ndarray:
    """Map ``[0, source]`` linearly onto ``[0, target]`` and ``[source, 1]`` onto
    ``[target, 1]``: monotone, so rankings and decisions at ``source`` are kept."""
    p = np.asarray(p, dtype=np.float64)
    low = p * (target / source)
    high = target + (p - source) * ((1.0 - target) / (1.0 - source))
    return np.where(p <= source, low, high)


def _stem(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".json", ".npz") else p


def default_model_path() -> Path:
    from imagen_audit.resources import data_dir

    return data_dir("filters") / DEFAULT_MODEL


# --------------------------------------------------------------------------- training
def near_duplicate_mask(x: np.ndarray, others: np.ndarray, threshold: float = 0.95,
                        chunk: int = 2048) -> np.ndarray:
    """True for rows of ``x`` whose cosine similarity to any row of ``others`` reaches
    ``threshold`` (rows are unit-norm): near-identical prompts across splits."""
    out = np.zeros(len(x), dtype=bool)
    if len(x) == 0 or len(others) == 0:
        return out
    o = np.asarray(others, np.float32)
    for i in range(0, len(x), chunk):
        sims = np.asarray(x[i:i + chunk], np.float32) @ o.T
        out[i:i + chunk] = sims.max(axis=1) >= threshold
    return out


def train_model(prompts: Sequence[str], labels: Sequence[int],
                categories: Sequence[str | None] | None = None, *,
                sources: Sequence[str] | None = None, encoder: Encoder | None = None,
                classifier: str = "logreg", c: float = 1.0, hidden: int = 64, seed: int = 0,
                exclude_near: Sequence[str] = (), near_threshold: float = 0.95,
                embeddings: np.ndarray | None = None,
                exclude_embeddings: np.ndarray | None = None,
                ensemble: int = 1, alpha: float | None = None,
                prompt_weights: Sequence[float] | None = None) -> EmbeddingModel:
    """Fit a classifier (``logreg`` or ``mlp``) on MiniLM embeddings of ``prompts``.

    An ``mlp`` is ``ensemble`` networks (seeds ``seed``, ``seed + 1``, ...) whose logits are
    averaged, stored as one wider network; ``alpha`` is its L2 penalty (default
    ``1e-3 / c``). ``prompt_weights`` (one per prompt, > 0) say how much a prompt counts within
    its class: an MLP draws its class-balanced training sample with these probabilities.
    The model records the hashes of the prompts it was trained on (``seen_hashes``).

    Rows near-identical (cosine ≥ ``near_threshold``) to any prompt of ``exclude_near`` (the
    evaluation split) are dropped first, so a model never trains on its evaluation prompts.
    Classes are balanced by weight. The metadata records the sha256 of the data actually
    used (:func:`~imagen_audit.filters.datasets.training_data_hash`).
    """
    from sklearn.linear_model import LogisticRegression

    from imagen_audit.filters.datasets import training_data_hash

    enc = encoder or shared_encoder()
    prompts = [str(p) for p in prompts]
    y = np.asarray(labels, dtype=int)
    if len(prompts) != len(y):
        raise FilterError("train: prompts and labels differ in length")
    if set(np.unique(y)) != {0, 1}:
        raise FilterError("train: need both harmful (1) and benign (0) prompts")
    x = embeddings if embeddings is not None else enc.encode(prompts)
    keep = np.ones(len(prompts), dtype=bool)
    if len(exclude_near) or exclude_embeddings is not None:
        ex = exclude_embeddings if exclude_embeddings is not None else enc.encode(
            list(exclude_near))
        keep = ~near_duplicate_mask(x, ex, near_threshold)
    x, y = x[keep], y[keep]
    rw = (np.ones(len(y)) if prompt_weights is None
          else np.asarray(prompt_weights, dtype=float)[keep])
    if len(rw) != len(y) or not (rw > 0).all():
        raise FilterError("train: need one positive weight per prompt")
    kept_prompts = [p for p, k in zip(prompts, keep, strict=True) if k]
    cats = [c_ for c_, k in zip(categories, keep, strict=True) if k] if categories else None
    srcs = [s for s, k in zip(sources, keep, strict=True) if k] if sources else None
    w = np.where(y == 1, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9)) * rw
    if classifier == "logreg":
        log.info("fitting a logistic regression on %d rows", len(y))
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        clf.fit(x, y, sample_weight=w)
        weights, biases = [clf.coef_.T.copy()], [clf.intercept_.copy()]
    elif classifier == "mlp":
        from sklearn.neural_network import MLPClassifier

        if ensemble < 1:
            raise FilterError(f"train: ensemble must be at least 1, got {ensemble}")
        members = []
        for k in range(ensemble):
            # MLPClassifier has no sample weights in older versions: balance by resampling.
            rng = np.random.default_rng(seed + k)
            pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
            n = max(len(pos), len(neg))
            pp, pn = rw[pos] / rw[pos].sum(), rw[neg] / rw[neg].sum()
            if prompt_weights is None:
                idx = np.concatenate([rng.choice(pos, n, replace=len(pos) < n),
                                      rng.choice(neg, n, replace=len(neg) < n)])
            else:  # weighted draws need replacement
                idx = np.concatenate([rng.choice(pos, n, p=pp), rng.choice(neg, n, p=pn)])
            log.info("fitting network %d of %d on %d rows", k + 1, ensemble, len(idx))
            clf = MLPClassifier(hidden_layer_sizes=(hidden,),
                                alpha=alpha if alpha is not None else 1e-3 / max(c, 1e-6),
                                max_iter=300, early_stopping=len(idx) >= 2000,
                                batch_size=min(512, len(idx)),
                                random_state=seed + k)
            clf.fit(x[idx], y[idx])
            members.append(([a.copy() for a in clf.coefs_], [b.copy() for b in clf.intercepts_]))
        weights, biases = average_networks(members)
    else:
        raise FilterError(f"train: unknown classifier {classifier!r} (logreg or mlp)")
    cat_names: tuple[str, ...] = ()
    cat_w = cat_b = None
    if cats is not None:
        # A harmful row without a category (None, or NaN from a table) teaches no category.
        mask = np.array([y_ == 1 and isinstance(c_, str) and c_ not in ("", "nan")
                         for y_, c_ in zip(y, cats, strict=True)])
        labels_c = [c_ for c_, m in zip(cats, mask, strict=True) if m]
        if len(set(labels_c)) >= 2:
            head = LogisticRegression(C=c, max_iter=2000, random_state=seed)
            head.fit(x[mask], labels_c)
            cat_names = tuple(str(n) for n in head.classes_)
            if len(cat_names) == 2:  # binary: expand to two columns
                cat_w = np.stack([-head.coef_[0], head.coef_[0]], axis=1) / 2
                cat_b = np.array([-head.intercept_[0], head.intercept_[0]]) / 2
            else:
                cat_w, cat_b = head.coef_.T.copy(), head.intercept_.copy()
    import sklearn

    meta = {
        "training_data_sha256": training_data_hash(kept_prompts, y),
        "training_size": {"harmful": int(y.sum()), "benign": int(len(y) - y.sum()),
                          "dropped_near_duplicates": int((~keep).sum())},
        "training_sources": ({s: int(n) for s, n in zip(*np.unique(srcs, return_counts=True),
                                                       strict=True)} if srcs else {}),
        "classifier": classifier, "c": c, "seed": seed,
        "hidden": hidden if classifier == "mlp" else None,
        "ensemble": ensemble if classifier == "mlp" else None,
        "alpha": (alpha if alpha is not None else 1e-3 / max(c, 1e-6))
        if classifier == "mlp" else None,
        "encoder": enc.name, "encoder_fingerprint": enc.fingerprint(),
        "scikit_learn": sklearn.__version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    from imagen_audit.filters.datasets import prompt_hashes

    return EmbeddingModel(weights, biases, cat_names, cat_w, cat_b, meta,
                          prompt_hashes(kept_prompts))


def average_networks(members: Sequence[tuple[list[np.ndarray], list[np.ndarray]]]
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One network whose output logit is the mean of the members' logits.

    For one-hidden-layer members this is exact: hidden units side by side, output weights
    divided by the number of members, output bias the mean; a single member is returned as
    it is."""
    if len(members) == 1:
        return members[0]
    if any(len(w) != 2 for w, _ in members):
        raise FilterError("train: only one-hidden-layer networks can be averaged")
    k = len(members)
    w0 = np.concatenate([w[0] for w, _ in members], axis=1)
    b0 = np.concatenate([b[0] for _, b in members])
    w1 = np.concatenate([w[1] for w, _ in members], axis=0) / k
    b1 = np.mean([b[1] for _, b in members], axis=0)
    return [w0, w1], [b0, b1]


def calibrate(model: EmbeddingModel, x: np.ndarray, y: Sequence[int],
              prompts: Sequence[str] | None = None) -> tuple[float, float]:
    """Platt scaling on a calibration split: fit ``sigmoid(a * logit + b)`` to ``y`` (classes
    weighted equally, so the base rate of the split does not move the probabilities) and
    fold ``a`` and ``b`` into the last layer of ``model`` (in place). Returns ``(a, b)``.

    Fitted on prompts the classifier was not trained on, it shrinks the over-confident
    logits an MLP gives to prompts unlike its training data. The calibration ``prompts``
    join the model's ``seen_hashes``: an evaluation must not count them as unseen either."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=int)
    if set(np.unique(y)) != {0, 1}:
        raise FilterError("calibrate: need both harmful (1) and benign (0) prompts")
    z = model.logits(x).reshape(-1, 1)
    lr = LogisticRegression(C=1e4, class_weight="balanced", max_iter=1000).fit(z, y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if a <= 0:
        raise FilterError("calibrate: the classifier ranks the calibration split backwards")
    model.weights[-1] = model.weights[-1] * a
    model.biases[-1] = model.biases[-1] * a + b
    model.meta["calibration"] = {"method": "platt", "a": a, "b": b, "n": len(y),
                                 "n_harmful": int(y.sum())}
    if prompts is not None:
        model.add_seen(prompts)
    return a, b


def fit_stack(model: EmbeddingModel, lexical: LexicalModel, x: np.ndarray,
              prompts: Sequence[str], y: Sequence[int]) -> np.ndarray:
    """Fit the stacker ``sigmoid(s0 * embedding_logit + s1 * lexical_logit + s2)`` on a
    calibration split (classes weighted equally) and attach ``lexical`` and it to ``model``
    (in place); returns ``(s0, s1, s2)``.

    Three numbers fitted on prompts neither view was trained on: it weighs the views by how
    well each ranks unseen prompts, and is itself the calibration of the combined score. The
    calibration ``prompts`` join the model's ``seen_hashes``."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=int)
    if set(np.unique(y)) != {0, 1}:
        raise FilterError("stack: need both harmful (1) and benign (0) prompts")
    f = np.c_[model.logits(x), lexical.logits(list(prompts))]
    lr = LogisticRegression(C=1e4, class_weight="balanced", max_iter=2000).fit(f, y)
    s = np.array([lr.coef_[0, 0], lr.coef_[0, 1], lr.intercept_[0]], dtype=np.float64)
    if s[0] <= 0 or s[1] <= 0:
        raise FilterError(f"stack: a view ranks the calibration split backwards ({s[:2]})")
    model.lexical, model.stack = lexical, s
    model.add_seen(prompts)
    model.meta["stack"] = {"method": "logistic regression on (embedding logit, lexical "
                                     "logit), classes balanced",
                           "weights": [float(v) for v in s], "n": len(y),
                           "n_harmful": int(y.sum())}
    return s


# --------------------------------------------------------------------------- backend
# The encoder reads 256 word pieces (about a thousand characters); the identity and figurative
# readings and the TF-IDF view would read on, at a few seconds per 100,000 characters. A prompt
# is untrusted input, so the classifier reads at most this many characters (four times the
# encoder's window; the longest prompt of every benchmark here has 1,093) and one pasted
# megabyte costs a second, not a minute. The word list still reads the whole prompt.
MAX_PROMPT_CHARS = 4000


class EmbeddingFilter:
    """Prompt filter: P(harmful) from a trained :class:`EmbeddingModel` on MiniLM embeddings.

    ``model`` may also be a list: an *ensemble*. Each member encodes the prompt with its own
    (adapted) encoder and gives its aligned probability; the filter's probability is their
    mean, and every re-reading (figurative, format, identity) is scored by that mean too, so
    the invariances hold for the ensemble as a whole. Models trained on different data
    disagree on the prompts none of their data settles, and averaging them is the one way to
    steady a classifier on unseen prompts without new data (round 71). Categories come from
    the first member; a prompt counts as seen when any member saw it."""

    name = "embedding"

    def __init__(self, model: str | Path | EmbeddingModel
                 | Sequence[str | Path | EmbeddingModel] | None = None,
                 encoder: Encoder | None = None, identity_lexicon: str | Path | None = None,
                 identity_mode: str = "neutral",
                 figurative_lexicon: str | Path | None = None,
                 format_reading: bool = False,
                 requests_by_first: Sequence[float] | None = None,
                 read_deobfuscated: bool = False,
                 non_english: Sequence[float] | None = None) -> None:
        specs = list(model) if isinstance(model, (list, tuple)) else [model]
        if not specs:
            raise FilterError("embedding: model is an empty list (give one path, or several "
                              "for an ensemble)")
        if len(specs) > 1 and encoder is not None:
            raise FilterError("embedding: one shared encoder cannot serve an ensemble (each "
                              "member brings its own adapted encoder)")
        self.models: list[EmbeddingModel] = []
        self.model_paths: list[Path | None] = []
        for i, spec in enumerate(specs):
            if isinstance(spec, EmbeddingModel):
                self.models.append(spec)
                self.model_paths.append(None)
            elif spec is None or isinstance(spec, (str, Path)):
                path = Path(spec) if spec else default_model_path()
                self.models.append(EmbeddingModel.load(path))
                self.model_paths.append(path)
            else:
                raise FilterError(f"embedding: model[{i}] must be a path, not "
                                  f"{type(spec).__name__} {spec!r}")
        self.model, self.model_path = self.models[0], self.model_paths[0]
        self.encoders = [encoder or m.encoder() for m in self.models]
        self.encoder = self.encoders[0]
        from imagen_audit.filters.identity import MODES, IdentityLexicon

        if identity_mode not in MODES:
            raise FilterError(f"embedding: identity_mode {identity_mode!r} is not one of "
                              f"{list(MODES)}")
        self.identity_mode = identity_mode
        self.identity_lexicon_path = Path(identity_lexicon) if identity_lexicon else None
        self.identity = (IdentityLexicon.load(identity_lexicon) if identity_lexicon
                         else None)
        from imagen_audit.filters.figurative import FigurativeLexicon

        self.figurative_lexicon_path = Path(figurative_lexicon) if figurative_lexicon else None
        self.figurative = (FigurativeLexicon.load(figurative_lexicon) if figurative_lexicon
                           else None)
        for option, value in (("format_reading", format_reading),
                              ("read_deobfuscated", read_deobfuscated)):
            if not isinstance(value, bool):
                raise FilterError(f"embedding: {option} must be true or false, not {value!r}")
        self.format_reading = format_reading
        self.read_deobfuscated = read_deobfuscated
        self.requests_by_first = _request_mapping(requests_by_first, len(self.models))
        self.non_english = _threshold_pair("non_english", non_english)

    def _scores(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray, list[str],
                                                   np.ndarray]:
        """Aligned and raw probabilities (the members' means), the first member's reading of
        each prompt's form, and the first member's embeddings (for categories)."""
        x = self.encoder.encode(prompts)
        probs, raw, forms = self.model.aligned_proba(x, prompts)
        if len(self.models) == 1:
            return probs, raw, forms, x
        all_probs, all_raw = [probs], [raw]
        for m, enc in zip(self.models[1:], self.encoders[1:], strict=True):
            p, r, _ = m.aligned_proba(enc.encode(prompts), prompts)
            all_probs.append(p)
            all_raw.append(r)
        mean_p, mean_r = np.mean(all_probs, axis=0), np.mean(all_raw, axis=0)
        if self.requests_by_first is not None:
            # Chat-style requests at the first member's own operating point (round 73): its
            # policy threshold lands on the ensemble's, so a request is decided where the
            # first member alone would decide it.
            from imagen_audit.filters.form import REQUEST

            req = np.asarray([f == REQUEST for f in forms], dtype=bool)
            src, dst = self.requests_by_first
            mean_p[req] = piecewise_align(probs[req], src, dst)
            mean_r[req] = raw[req]
        return mean_p, mean_r, forms, x

    def score(self, prompts: Sequence[str]) -> list[FilterResult]:
        if not prompts:
            return []
        full = [str(p) for p in prompts]
        prompts = [p[:MAX_PROMPT_CHARS] for p in full]
        if self.read_deobfuscated:
            # The classifier reads what the prompt says: leetspeak spelt out (round 74), as
            # the word list reads it; every re-reading below starts from this text.
            from imagen_audit.filters.normalise import undo_leet

            read = [undo_leet(p) for p in prompts]
        else:
            read = prompts
        probs, raw, forms, x = self._scores(read)
        cats = self.model.predict_category(x)
        details = [{"form": f, "raw": float(r)} for f, r in zip(forms, raw, strict=True)]
        for d, p, r, q in zip(details, full, read, prompts, strict=True):
            if len(p) > MAX_PROMPT_CHARS:
                d["read_chars"] = f"first {MAX_PROMPT_CHARS} of {len(p)}"
            if r != q:
                d["deobfuscated"] = r
        texts = read
        if self.figurative is not None:
            probs, texts = self._figurative_invariant(texts, probs, details)
        if self.format_reading:
            probs, texts = self._format_invariant(texts, probs, details)
        if self.identity is not None:
            probs = self._identity_invariant(texts, probs, details)
        if self.non_english is not None:
            probs = self._non_english_at_own_threshold(prompts, probs, details)
        return [FilterResult(float(np.clip(p, 0.0, 1.0)), c, d)
                for p, c, d in zip(probs, cats, details, strict=True)]

    def _non_english_at_own_threshold(self, prompts: list[str], probs: np.ndarray,
                                      details: list[dict[str, Any]]) -> np.ndarray:
        """Scores of prompts that do not read as English (:mod:`imagen_audit.filters.language`)
        mapped so that FROM lands on TO (the ``non_english`` option): such a prompt is blocked
        at TO exactly when its score, after every invariant reading, reaches FROM.

        The classifier was trained on English, so on other languages its score measures
        foreignness as much as harm (filters/README.md, rounds 78, 81 and 84): a model that
        blocks fewer harmless English prompts can also release harmful foreign ones. A
        policy team keeps its own operating point for the prompts the model cannot read
        (FROM below TO: stricter; above: more lenient) without moving the English one. The
        score before the mapping stays in ``details`` (``score_before_non_english``)."""
        from imagen_audit.filters.language import reads_english_each

        assert self.non_english is not None
        foreign = ~np.asarray(reads_english_each(prompts), dtype=bool)
        if not foreign.any():
            return probs
        src, dst = self.non_english
        out = probs.copy()
        out[foreign] = piecewise_align(np.clip(probs[foreign], 0.0, 1.0), src, dst)
        for i in np.flatnonzero(foreign):
            details[i]["in_english"] = False
            details[i]["score_before_non_english"] = float(probs[i])
        return out

    def _figurative_invariant(self, prompts: list[str], probs: np.ndarray,
                              details: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
        """The lower of each prompt's score and its score with its idioms read literally
        (:mod:`imagen_audit.filters.figurative`), and the prompts as the identity rewrite
        should read them (rewritten where an idiom was found, so both rewrites combine)."""
        assert self.figurative is not None
        return self._reread(prompts, probs, details, self.figurative.rewrite, "figurative")

    def _format_invariant(self, prompts: list[str], probs: np.ndarray,
                          details: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
        """The lower of each prompt's score and its score read as "a meme about <topic>"
        (:mod:`imagen_audit.filters.format_reading`), and the texts the identity rewrite reads
        (the format reading where there is one)."""
        from imagen_audit.filters.format_reading import read_format

        return self._reread(prompts, probs, details, read_format, "format")

    def _reread(self, prompts: list[str], probs: np.ndarray, details: list[dict[str, Any]],
                rewrite: Callable[[str], str | None], name: str
                ) -> tuple[np.ndarray, list[str]]:
        """Score each prompt that ``rewrite`` reads otherwise a second time, keep the lower
        score, record the rewrite and the score before it in ``details`` (``<name>_rewrite``,
        ``score_before_<name>``), and return the texts as the next reading should see them."""
        rewrites = [(i, r) for i, p in enumerate(prompts) if (r := rewrite(p)) is not None]
        if not rewrites:
            return probs, prompts
        alt = self._scores([r for _, r in rewrites])[0]
        out, texts = probs.copy(), list(prompts)
        for (i, r), s in zip(rewrites, alt, strict=True):
            details[i][f"{name}_rewrite"] = r
            details[i][f"score_before_{name}"] = float(probs[i])
            out[i] = min(float(probs[i]), float(s))
            texts[i] = r
        return out, texts

    def _identity_invariant(self, prompts: list[str], probs: np.ndarray,
                            details: list[dict[str, Any]]) -> np.ndarray:
        """The lower of each prompt's score and its score with identity descriptors
        rewritten (:mod:`imagen_audit.filters.identity`): a block that only the descriptor
        caused is lifted; the original score stays in ``details``."""
        assert self.identity is not None
        variants: list[tuple[int, list[str]]] = []
        for i, p in enumerate(prompts):
            v = self.identity.variants(p, self.identity_mode)
            if v is not None:
                variants.append((i, v))
        if not variants:
            return probs
        flat = [t for _, vs in variants for t in vs]
        alt = self._scores(flat)[0]
        out, k = probs.copy(), 0
        for i, vs in variants:
            s = float(np.median(alt[k:k + len(vs)]))
            k += len(vs)
            details[i]["identity_rewrite"] = vs[0]
            details[i]["score_before_identity"] = float(probs[i])
            out[i] = min(float(probs[i]), s)
        return out

    def seen(self, prompts: Sequence[str]) -> np.ndarray | None:
        """Which prompts the model (any member of an ensemble) was trained or calibrated on
        (None: no member recorded it)."""
        masks = [m for m in (model.seen(prompts) for model in self.models) if m is not None]
        if not masks:
            return None
        return np.logical_or.reduce(masks)

    def describe(self) -> dict[str, Any]:
        out = self._describe_first()
        if len(self.models) > 1:
            out["ensemble"] = [{"model": str(p) if p else None,
                                "training_data_sha256": m.meta.get("training_data_sha256"),
                                "encoder_adapted": bool(m.encoder_delta)}
                               for m, p in zip(self.models, self.model_paths, strict=True)]
        return out

    def _describe_first(self) -> dict[str, Any]:
        return {"backend": self.name, "model": str(self.model_path) if self.model_path else None,
                "training_data_sha256": self.model.meta.get("training_data_sha256"),
                "classifier": self.model.meta.get("classifier"), "encoder": self.encoder.name,
                "lexical_view": self.model.lexical is not None,
                "decision_threshold": self.model.meta.get("decision_threshold"),
                "request_threshold": self.model.meta.get("request_threshold"),
                "request_head": self.model.request_head is not None,
                "format_threshold": self.model.meta.get("format_threshold"),
                "format_head": self.model.format_head is not None,
                "encoder_adapted": bool(self.model.encoder_delta),
                "identity_lexicon": (str(self.identity_lexicon_path)
                                     if self.identity_lexicon_path else None),
                "identity_mode": self.identity_mode if self.identity is not None else None,
                "figurative_lexicon": (str(self.figurative_lexicon_path)
                                       if self.figurative_lexicon_path else None),
                "format_reading": self.format_reading,
                "read_deobfuscated": self.read_deobfuscated,
                **({"requests_by_first": list(self.requests_by_first)}
                   if self.requests_by_first is not None else {}),
                **({"non_english": list(self.non_english)}
                   if self.non_english is not None else {})}


def _request_mapping(value: Sequence[float] | None, members: int
                     ) -> tuple[float, float] | None:
    """The ``requests_by_first`` option, checked: ``[FROM, TO]``, two numbers in (0, 1). An
    ensemble then scores chat-style requests by its first member alone, mapped so that FROM
    (that member's own policy threshold) lands on TO (the ensemble's)."""
    if value is None:
        return None
    if members < 2:
        raise FilterError("embedding: requests_by_first needs an ensemble (model: [a, b])")
    return _threshold_pair("requests_by_first", value)


def _threshold_pair(option: str, value: Sequence[float] | None) -> tuple[float, float] | None:
    """An option naming ``[FROM, TO]``, two thresholds in (0, 1) (None when unset)."""
    if value is None:
        return None
    # A string is one value, refused below, not two of its characters ("55" is not [5, 5]).
    items = [value] if isinstance(value, (str, bytes)) else value
    try:
        src, dst = (float(v) for v in items)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise FilterError(f"embedding: {option} must be [FROM, TO], two thresholds, "
                          f"not {value!r}") from None
    if not (0.0 < src < 1.0 and 0.0 < dst < 1.0):
        raise FilterError(f"embedding: {option} thresholds must lie in (0, 1), not "
                          f"{[src, dst]}")
    return src, dst


@register("embedding")
def _make(model: str | list[str] | None = None, identity_lexicon: str | None = None,
          identity_mode: str = "neutral",
          figurative_lexicon: str | None = None,
          format_reading: bool = False,
          requests_by_first: list[float] | None = None,
          read_deobfuscated: bool = False,
          non_english: list[float] | None = None) -> EmbeddingFilter:
    return EmbeddingFilter(model, identity_lexicon=identity_lexicon, identity_mode=identity_mode,
                           figurative_lexicon=figurative_lexicon, format_reading=format_reading,
                           requests_by_first=requests_by_first,
                           read_deobfuscated=read_deobfuscated, non_english=non_english)
