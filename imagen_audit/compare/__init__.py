"""Regression audits: compare two runs metric by metric (``imagen-audit compare``).

- :mod:`~imagen_audit.compare.pairing`: common prompts and stages, what was left out, and
  which images pair up (same prompt, seed and stage);
- :mod:`~imagen_audit.compare.twosample`: paired / unpaired tests of no change, vectorised;
- :mod:`~imagen_audit.compare.metrics`: :func:`compare`, the changes table and its
  corrections;
- :mod:`~imagen_audit.compare.report`: ``index.html``, ``compare.json``, ``summary.md``;
- :mod:`~imagen_audit.compare.checks`: gate checks on a comparison (``gate --baseline``).

Like the analysis, nothing here imports torch.
"""
