"""Analysis: tables in, tables out. No torch, PIL or model imports.

- :mod:`~imagen_audit.analyse.frame`: ``MetricFrame`` (overall, by group, differences,
  ratios, intervals), modelled on fairlearn's;
- :mod:`~imagen_audit.analyse.stats`: Wilson and bootstrap intervals, score tests,
  Benjamini–Hochberg;
- :mod:`~imagen_audit.analyse.units`: annotation rows → one unit per image;
- :mod:`~imagen_audit.analyse.baselines`: occupations vs parity and the BLS baseline,
  stereotype amplification;
- :mod:`~imagen_audit.analyse.drift`: paired stage-to-stage differences;
- :mod:`~imagen_audit.analyse.adjust`: misclassification-adjusted shares;
- :mod:`~imagen_audit.analyse.findings`: small-sample rules and ranked findings;
- :mod:`~imagen_audit.analyse.pipeline`: :func:`analyse`, everything at once.
"""

from imagen_audit.analyse.frame import Distribution, Mean, MetricFrame, Rate, Share
from imagen_audit.analyse.pipeline import Analysis, AnalysisConfig, analyse, to_json

__all__ = ["Analysis", "AnalysisConfig", "Distribution", "Mean", "MetricFrame", "Rate", "Share",
           "analyse", "to_json"]
