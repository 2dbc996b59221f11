"""``detoxify``: Detoxify checkpoints (Unitary's toxic-comment classifiers), for users who have one.

Detoxify cannot download its weights here, so the backend reads a checkpoint the user
already has, in Detoxify's own format: a ``torch.save``'d dict with

- ``config["arch"]["args"]``: ``model_type`` (e.g. ``bert-base-uncased``), ``model_name``
  (a transformers class, e.g. ``BertForSequenceClassification``), ``tokenizer_name`` (e.g.
  ``BertTokenizer``), ``num_classes``;
- ``config["dataset"]["args"]["classes"]``: the output names (``toxic``, ``severe_toxic``,
  ``obscene``, ``threat``, ``insult``, ``identity_hate``, ...);
- ``state_dict``: the weights.

plus ``huggingface_config_path``, a local folder with the transformers config and
tokenizer files of ``model_type`` (as Detoxify's own offline mode needs). Loading follows
``detoxify.load_checkpoint`` step by step, with ``local_files_only=True`` and
``torch.load(weights_only=True)`` (no arbitrary unpickling). Scores are the sigmoid of the
logits, as in ``Detoxify.predict``; the backend's score is the largest over the classes it
is told to use (``classes``, default all), its category the I2P category of that class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagen_audit.filters.base import FilterError, FilterResult, register

# Detoxify renames these (detoxify.load_checkpoint's change_names).
RENAME = {"toxic": "toxicity", "identity_hate": "identity_attack",
          "severe_toxic": "severe_toxicity"}
# Detoxify classes mapped to the I2P categories.
CATEGORY = {"toxicity": "harassment", "severe_toxicity": "harassment", "obscene": "sexual",
            "sexual_explicit": "sexual", "threat": "violence", "insult": "harassment",
            "identity_attack": "hate"}


def load_checkpoint(checkpoint: str | Path, huggingface_config_path: str | Path,
                    device: str = "cpu") -> tuple[Any, Any, list[str]]:
    """(model, tokenizer, class names) from a Detoxify checkpoint and a local HF config."""
    import torch
    import transformers

    ckpt, cfg_dir = Path(checkpoint), Path(huggingface_config_path)
    if not ckpt.is_file():
        raise FilterError(f"{ckpt}: Detoxify checkpoint not found")
    if not (cfg_dir / "config.json").is_file():
        raise FilterError(f"{cfg_dir}: no config.json (huggingface_config_path must be a local "
                          "folder with the model's config and tokenizer files)")
    try:
        loaded = torch.load(ckpt, map_location=device, weights_only=True)
    except Exception as exc:
        raise FilterError(f"{ckpt}: cannot read as a Detoxify checkpoint ({exc})") from exc
    if not isinstance(loaded, dict) or "config" not in loaded or "state_dict" not in loaded:
        raise FilterError(f"{ckpt}: a Detoxify checkpoint holds 'config' and 'state_dict'")
    try:
        args = dict(loaded["config"]["arch"]["args"])
        classes = [RENAME.get(c, c) for c in loaded["config"]["dataset"]["args"]["classes"]]
        model_class = getattr(transformers, args["model_name"])
        tokenizer_class = getattr(transformers, args["tokenizer_name"])
        num_classes = int(args["num_classes"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise FilterError(f"{ckpt}: config is not in Detoxify's format ({exc})") from exc
    if len(classes) != num_classes:
        raise FilterError(f"{ckpt}: {len(classes)} class names for {num_classes} outputs")
    config = transformers.AutoConfig.from_pretrained(str(cfg_dir), local_files_only=True)
    config.num_labels = num_classes
    model = model_class(config)
    missing, unexpected = model.load_state_dict(loaded["state_dict"], strict=False)
    real_missing = [k for k in missing if not k.endswith("position_ids")]
    if real_missing or unexpected:
        raise FilterError(f"{ckpt}: weights do not fit {args['model_name']} with the config in "
                          f"{cfg_dir} (missing {real_missing[:3]}, unexpected {unexpected[:3]})")
    tokenizer = tokenizer_class.from_pretrained(str(cfg_dir), local_files_only=True)
    model.to(device).eval()
    return model, tokenizer, classes


class DetoxifyFilter:
    name = "detoxify"

    def __init__(self, checkpoint: str | Path, huggingface_config_path: str | Path,
                 classes: Sequence[str] | None = None, device: str = "cpu",
                 batch_size: int = 32, max_length: int = 256) -> None:
        self.checkpoint = Path(checkpoint)
        self.config_path = Path(huggingface_config_path)
        self.model, self.tokenizer, self.class_names = load_checkpoint(
            checkpoint, huggingface_config_path, device)
        wanted = list(classes) if classes else list(self.class_names)
        unknown = [c for c in wanted if c not in self.class_names]
        if unknown:
            raise FilterError(f"detoxify: classes {unknown} not in the checkpoint "
                              f"({self.class_names})")
        self.use = [self.class_names.index(c) for c in wanted]
        self.device, self.batch_size, self.max_length = device, batch_size, max_length

    def predict(self, prompts: Sequence[str]) -> list[dict[str, float]]:
        """Per prompt, every class's probability (like ``Detoxify.predict`` on a list)."""
        import torch

        out: list[dict[str, float]] = []
        with torch.no_grad():
            for i in range(0, len(prompts), self.batch_size):
                batch = [str(p) for p in prompts[i:i + self.batch_size]]
                enc = self.tokenizer(batch, return_tensors="pt", truncation=True, padding=True,
                                     max_length=self.max_length).to(self.device)
                probs = torch.sigmoid(self.model(**enc)[0]).cpu().numpy()
                out += [{c: float(row[j]) for j, c in enumerate(self.class_names)}
                        for row in probs]
        return out

    def score(self, prompts: Sequence[str]) -> list[FilterResult]:
        results = []
        for probs in self.predict(prompts):
            best = max(self.use, key=lambda j: probs[self.class_names[j]])
            name = self.class_names[best]
            results.append(FilterResult(min(max(probs[name], 0.0), 1.0), CATEGORY.get(name),
                                        {"classes": probs}))
        return results

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "checkpoint": str(self.checkpoint),
                "classes": [self.class_names[j] for j in self.use]}


@register("detoxify")
def _make(checkpoint: str | None = None, huggingface_config_path: str | None = None,
          classes: Sequence[str] | None = None, device: str = "cpu") -> DetoxifyFilter:
    if not checkpoint or not huggingface_config_path:
        raise FilterError("detoxify needs options 'checkpoint' (a Detoxify .ckpt file) and "
                          "'huggingface_config_path' (a local folder with its config and "
                          "tokenizer); Detoxify's own downloads do not work offline")
    return DetoxifyFilter(checkpoint, huggingface_config_path, classes, device)
