"""Which fresh judgement sets have become training data.

A fresh set (:data:`imagen_audit.filters.datasets.FRESH_SETS`) is written by a helper who read
nothing of the project and judges one round, read once. Once read it is no longer blind, and a
later round may train on it (round 28 did, for the eleven below): ``filters train`` then takes
it as a default source, split by prompt like every other, and its training guard stops
treating it as evaluation-only. Both sides read this one tuple, so they cannot disagree; it
lives in a module without imports because the CLI's defaults must load without pandas.
"""

# Harmful sets first, then benign and identity ones: ``filters train`` keeps this order in
# its default sources, and the order of the sources is the order of the training rows.
JUDGED_FRESH_SETS = ("fresh-harmful", "fresh-harmful-b", "fresh-c-harmful", "fresh-d-harmful",
                     "fresh-benign", "fresh-identity", "fresh-identity-b", "fresh-c-benign",
                     "fresh-c-identity", "fresh-d-benign", "fresh-d-identity")

# Written for the next rounds' judgement and never scored by any model or policy (session 12:
# `fresh-m-*` for the next round, `fresh-n-*` as a spare). Nothing the project runs by default
# scores them (``filters eval`` does not report them, ``bench_filters --prompts shipped`` leaves
# them out); the round that reads one first drops, before scoring, the lines its candidates'
# adapted encoders place at cosine >= 0.95 to a prompt they trained or calibrated on, then
# moves it out of this tuple (session 11: fresh-i judged round 31, fresh-j round 32; session 12:
# fresh-k round 33, fresh-l round 34).
UNREAD_FRESH_SETS = ("fresh-m-benign", "fresh-m-identity", "fresh-m-harmful",
                     "fresh-n-benign", "fresh-n-identity", "fresh-n-harmful")
