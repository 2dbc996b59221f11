"""Mitigations as run options, so a before/after comparison is one flag apart.

* **Prompt template** (``--prompt-template "a high-quality photo, {prompt}"``): every probe
  prompt is wrapped in a user-given template.
* **Identity-descriptor augmentation** (``--augment-identity gender,ethnicity``): the approach
  DALL-E 2 deployed: for prompts that name no identity, each *sample* gets one descriptor
  drawn uniformly from the identity probes' terms on the given axes, inserted before the
  occupation ("a photo of the face of a *Black* nurse") or appended when the prompt names
  no occupation. The draw depends only on the sample's seed and prompt id, so it is
  reproducible and independent of batching.
* **Negative prompt** (``--negative-prompt``) is a generator setting and is recorded there.

The text actually sent is stored per sample (``effective_prompt``) next to the probe prompt,
which the analysis keeps grouping by; the mitigation itself is bound to the run (a resumed
run must use the same one) and shown in the report.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagen_audit.errors import AuditError
from imagen_audit.probes import IdentityTerm, Prompt, indefinite_article, load_identity_terms


@dataclass(frozen=True)
class Mitigation:
    """How probe prompts are rewritten before generation (empty = not at all)."""

    prompt_template: str | None = None
    augment_axes: tuple[str, ...] = ()
    terms: tuple[IdentityTerm, ...] = field(default=(), compare=False)
    occupation_terms: Mapping[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def build(cls, prompt_template: str | None = None, augment_axes: Sequence[str] = (),
              occupation_terms: Mapping[str, str] | None = None) -> Mitigation:
        if prompt_template is not None and "{prompt}" not in prompt_template:
            raise AuditError(f"--prompt-template must contain {{prompt}}: {prompt_template!r}")
        terms = tuple(load_identity_terms(axes=list(augment_axes))) if augment_axes else ()
        return cls(prompt_template, tuple(augment_axes), terms, dict(occupation_terms or {}))

    @property
    def active(self) -> bool:
        return bool(self.prompt_template or self.augment_axes)

    def describe(self) -> dict[str, Any]:
        """What the run records and the report shows."""
        if not self.active:
            return {"mitigation": None}
        return {"prompt_template": self.prompt_template,
                "augment_identity_axes": list(self.augment_axes),
                "descriptors": [t.adjective for t in self.terms],
                "descriptor_draw": "uniform per sample, from sha256(prompt_id, seed)"}

    def rewrite(self, prompt: Prompt, sample_index: int, seed: int) -> str | None:
        """The text to send for this sample, or None when it is the probe prompt."""
        if not self.active:
            return None
        text = prompt.prompt
        if self.terms and prompt.identity_id is None:
            digest = hashlib.sha256(f"{prompt.prompt_id}\0{seed}".encode()).digest()
            term = self.terms[int.from_bytes(digest[:8], "big") % len(self.terms)]
            text = insert_descriptor(text, term.adjective,
                                     self.occupation_terms.get(prompt.occupation_id or ""))
        if self.prompt_template:
            text = self.prompt_template.replace("{prompt}", text)
        return text if text != prompt.prompt else None


def insert_descriptor(text: str, adjective: str, occupation: str | None) -> str:
    """Put ``adjective`` before the occupation (fixing "a"/"an"), or append it."""
    if occupation:
        m = re.search(rf"\b(?:(a|an)\s+)?({re.escape(occupation)})\b", text, re.IGNORECASE)
        if m:
            article = f"{indefinite_article(adjective)} " if m.group(1) else ""
            if m.group(1) and m.group(1)[0].isupper():
                article = article.capitalize()
            return f"{text[:m.start()]}{article}{adjective} {m.group(2)}{text[m.end():]}"
    return f"{text}, {adjective}"
