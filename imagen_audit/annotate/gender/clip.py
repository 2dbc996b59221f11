"""``clip``: zero-shot perceived gender with a CLIP model (the HEIM / Stable Bias approach).

Any transformers ``CLIPModel`` with its processor, from a hub id or a local folder (loaded
with ``from_pretrained``; ``local_files_only`` by default, so nothing is downloaded at run
time). Each label has one or more text prompts; the face crop (the box grown by
``margin``) is scored against all prompts, the softmax over prompts is summed per label,
and P(female) is the female share. Prompts are configurable (``labels``: a mapping of
'female'/'male' to a list of prompts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imagen_audit.annotate.base import AnnotatorError, Face, register_gender
from imagen_audit.annotate.gender.deepface import crop

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_LABELS: dict[str, tuple[str, ...]] = {
    "female": ("a photo of a woman", "a photo of a female person"),
    "male": ("a photo of a man", "a photo of a male person"),
}


def parse_labels(text: str) -> dict[str, tuple[str, ...]]:
    """``female=a photo of a woman|a woman;male=a photo of a man`` → a label mapping."""
    out: dict[str, tuple[str, ...]] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        label, _, prompts = part.partition("=")
        out[label.strip()] = tuple(p.strip() for p in prompts.split("|") if p.strip())
    return out


class ClipGender:
    name = "clip"

    def __init__(self, model: str = DEFAULT_MODEL,
                 labels: Mapping[str, Sequence[str]] | None = None, margin: float = 0.25,
                 local_files_only: bool = True, device: str = "cpu", threads: int = 1) -> None:
        labels = {k: tuple(v) for k, v in (labels or DEFAULT_LABELS).items()}
        if set(labels) != {"female", "male"} or not all(labels.values()):
            raise AnnotatorError("clip labels must give prompts for exactly 'female' and "
                                 f"'male', got {sorted(labels)}")
        import torch
        from transformers import CLIPModel, CLIPProcessor

        if device == "cpu":
            torch.set_num_threads(int(threads))
        try:
            self._model = CLIPModel.from_pretrained(model, local_files_only=local_files_only)
            self._processor = CLIPProcessor.from_pretrained(model,
                                                            local_files_only=local_files_only)
        except OSError as exc:
            raise AnnotatorError(
                f"CLIP model {model!r} could not be loaded ({exc}); give a local folder saved "
                "with save_pretrained or a hub id already in the local cache (imagen-audit "
                "does not download models at run time)") from exc
        self._model.eval().to(device)
        self._torch = torch
        self.device = device
        self.model_id = model
        self.labels = labels
        self.margin = float(margin)
        prompts = [p for k in ("female", "male") for p in labels[k]]
        self._n_female = len(labels["female"])
        with torch.no_grad():
            tok = self._processor(text=prompts, return_tensors="pt", padding=True)
            feats = self._model.get_text_features(**{k: v.to(device) for k, v in tok.items()})
            feats = getattr(feats, "pooler_output", feats)
            self._text = feats / feats.norm(dim=-1, keepdim=True)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_id, "margin": self.margin,
                "labels": {k: list(v) for k, v in self.labels.items()}}

    def p_female(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        torch = self._torch
        crops = [np.ascontiguousarray(crop(image, face.box, self.margin))
                 for image, face in pairs]
        with torch.no_grad():
            pix = self._processor(images=crops, return_tensors="pt")["pixel_values"]
            feats = self._model.get_image_features(pixel_values=pix.to(self.device))
            feats = getattr(feats, "pooler_output", feats)
            feats = feats / feats.norm(dim=-1, keepdim=True)
            logits = self._model.logit_scale.exp() * feats @ self._text.T
            probs = logits.softmax(dim=-1).double().cpu().numpy()
        return probs[:, :self._n_female].sum(axis=1)


@register_gender("clip")
def _make(**options: Any) -> ClipGender:
    return ClipGender(**options)
