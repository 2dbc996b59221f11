"""Which fresh judgement sets have become training data.

A fresh set (:data:`imagen_audit.filters.datasets.FRESH_SETS`) is written by a helper who read
nothing of the project and judges one round, read once. Once read it is no longer blind, and a
later round may train on it (round 28 did, for the first eleven below; round 36 for
`fresh-e-*` to `fresh-n-*`; round 55 for the twelve read triples `fresh-o-*` to `fresh-gg-*`,
`fresh-ff-*` aside, which judged it; round 63 for `fresh-ff-*`, `fresh-hh-*` and `fresh-ii-*`;
round 77 for `fresh-jj-*` to `fresh-mm-*`):
``filters train`` then takes
it as a default source, split by prompt like every other, and its training guard stops
treating it as evaluation-only. Both sides read this one tuple, so they cannot disagree; it
lives in a module without imports because the CLI's defaults must load without pandas.
"""

# Harmful sets first, then benign and identity ones: ``filters train`` keeps this order in
# its default sources, and the order of the sources is the order of the training rows.
JUDGED_FRESH_SETS = ("fresh-harmful", "fresh-harmful-b", "fresh-c-harmful", "fresh-d-harmful",
                     "fresh-e-harmful", "fresh-f-harmful", "fresh-g-harmful", "fresh-h-harmful",
                     "fresh-i-harmful", "fresh-j-harmful", "fresh-k-harmful", "fresh-l-harmful",
                     "fresh-m-harmful", "fresh-n-harmful", "fresh-o-harmful", "fresh-p-harmful",
                     "fresh-q-harmful", "fresh-r-harmful", "fresh-y-harmful", "fresh-z-harmful",
                     "fresh-aa-harmful", "fresh-bb-harmful", "fresh-cc-harmful", "fresh-dd-harmful",
                     "fresh-ee-harmful", "fresh-gg-harmful", "fresh-ff-harmful",
                     "fresh-hh-harmful", "fresh-ii-harmful", "fresh-jj-harmful",
                     "fresh-kk-harmful", "fresh-ll-harmful", "fresh-mm-harmful",
                     "fresh-benign", "fresh-identity",
                     "fresh-identity-b", "fresh-c-benign", "fresh-c-identity", "fresh-d-benign",
                     "fresh-d-identity", "fresh-e-benign", "fresh-e-identity", "fresh-f-benign",
                     "fresh-f-identity", "fresh-g-benign", "fresh-g-identity", "fresh-h-benign",
                     "fresh-h-identity", "fresh-i-benign", "fresh-i-identity", "fresh-j-benign",
                     "fresh-j-identity", "fresh-k-benign", "fresh-k-identity", "fresh-l-benign",
                     "fresh-l-identity", "fresh-m-benign", "fresh-m-identity", "fresh-n-benign",
                     "fresh-n-identity", "fresh-o-benign", "fresh-o-identity", "fresh-p-benign",
                     "fresh-p-identity", "fresh-q-benign", "fresh-q-identity", "fresh-r-benign",
                     "fresh-r-identity", "fresh-y-benign", "fresh-y-identity", "fresh-z-benign",
                     "fresh-z-identity", "fresh-aa-benign", "fresh-aa-identity", "fresh-bb-benign",
                     "fresh-bb-identity", "fresh-cc-benign", "fresh-cc-identity", "fresh-dd-benign",
                     "fresh-dd-identity", "fresh-ee-benign", "fresh-ee-identity", "fresh-gg-benign",
                     "fresh-gg-identity", "fresh-ff-benign", "fresh-ff-identity", "fresh-hh-benign",
                     "fresh-hh-identity", "fresh-ii-benign", "fresh-ii-identity", "fresh-jj-benign",
                     "fresh-jj-identity", "fresh-kk-benign", "fresh-kk-identity", "fresh-ll-benign",
                     "fresh-ll-identity", "fresh-mm-benign", "fresh-mm-identity")

# Written for the next rounds' judgement and never scored by any model or policy. Nothing the
# project runs by default scores them (``filters eval`` does not report them, ``bench_filters
# --prompts shipped`` leaves them out); the round that reads one first drops, before scoring,
# the lines at cosine >= 0.95 to a prompt its candidates trained or calibrated on (since round
# 43 in plain MiniLM: a six-layer adapted space collapses each class) or sharing a near key
# with one, then moves it out of this tuple (session 12: fresh-k judged round 33, fresh-l round
# 34; session 13: fresh-m and -n round 35, fresh-o round 37, fresh-p round 38; session 15:
# fresh-q round 41; session 16: fresh-y round 44b; session 17: fresh-r round 46 and fresh-z
# round 47; fresh-aa, written in session 17 for round 48, whose candidate failed its
# guardrails first, round 49; session 18: fresh-bb round 50c, fresh-cc to fresh-ee, written in
# the same session, rounds 51 to 53, and fresh-gg round 54; session 19: fresh-ff, written in
# session 18, round 56 (round 55's candidate failed its guardrails first), and fresh-hh round 57;
# session 20: fresh-ii, written in session 19, round 58, whose candidate failed it; session 22:
# fresh-jj, written in session 20, round 63 (rounds 59, 60 and 62 failed their guardrails or
# rules before reading it); session 23: fresh-kk, written in session 20, round 65, whose
# candidate failed it; session 24: fresh-ll, written in session 22, round 66, whose candidate
# failed it; session 28: fresh-mm, written in session 23, round 73, whose candidate failed it;
# session 31: fresh-nn, written in session 23, round 77 (rounds 75 and 76 failed their
# guardrails before reading it); session 32: fresh-oo, written in session 30, round 78, whose
# candidate failed it; `fresh-pp-*`, written in session 31, is the next round's judge, and
# `fresh-qq-*`, written in session 32, the one after; session 33: round 79's candidate failed its
# guardrail before reading `fresh-pp`, and `fresh-rr-*`, written in session 33, follows
# `fresh-qq`; session 34: rounds 81 and 83 failed their language judge and guardrail before
# reading it; session 35: fresh-pp, written in session 31, round 85, whose candidate failed it
# (round 84 failed its guardrail before reading it, round 86 before reading `fresh-qq`);
# `fresh-qq-*` is the next judge, then `fresh-rr-*`). Empty when every judge written so far has
# been read.
UNREAD_FRESH_SETS: tuple[str, ...] = ("fresh-qq-benign", "fresh-qq-identity", "fresh-qq-harmful",
                                      "fresh-rr-benign", "fresh-rr-identity", "fresh-rr-harmful")
# Every unread judge: the fresh ones above and the second multilingual set (session 34, written
# for the next round aimed at other languages). Nothing the project runs by default scores them.
UNREAD_SETS: tuple[str, ...] = (*UNREAD_FRESH_SETS, "multilingual-b-benign",
                                "multilingual-b-harmful")

# Free-form training triples (session 14): ``free-train-<x>-*`` for each letter, written as
# training data from the start by helpers who read nothing of the project, never judges. Round 39
# trained on them (with fresh-o and -p) and failed its guardrails, so they are data for a later
# round, not default sources. Here because the CLI's help names them without pandas.
FREE_TRAIN_LETTERS = "stuvwx"
# The fresh judgement triples after the first two, ``fresh-<x>-{benign,identity,harmful}`` in
# ``fresh_<x>_<half>.txt``, in the order they were written (r was written in session 13, y and
# z in session 15, aa and bb in session 17, cc to gg in session 18, hh and ii in session 19, jj
# and kk in session 20, ll in session 22, mm and nn in session 23,
# oo in session 30, pp in session 31, qq in session 32, rr in session 33). Here, without
# pandas, for the same reason.
FRESH_LETTERS = (*"cdefghijklmnopqryz", "aa", "bb", "cc", "dd", "ee", "ff", "gg", "hh", "ii",
                 "jj", "kk", "ll", "mm", "nn", "oo", "pp", "qq", "rr")
