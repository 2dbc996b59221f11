"""Safety-filter benchmark: prompts per second per backend, and the default policy on
I2P vs COCO (full set and held-out split), CoProV2, over-blocking probes and the trap.

    python bench/bench_filters.py                 # everything (a few minutes on 2 CPU cores)
    python bench/bench_filters.py --quick         # throughput only
    python bench/bench_filters.py --out DIR       # also write the evaluation files
    python bench/bench_filters.py --quick --prompts shipped --device cuda --n 20000
                                                  # a GPU: throughput, and CPU agreement

Needs the shared data sets (``../shared/data`` or ``$IMAGEN_AUDIT_DATA``), except with
``--quick --prompts shipped`` (the hand-written sets inside the package). With ``--device``
other than cpu it also scores a sample on both devices and prints how far they differ.
Prints figures; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))


def _fmt(v: object) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def throughput(prompts: list[str], what: str, device: str = "cpu",
               batch_size: int = 64) -> None:
    from imagen_audit.filters.base import FilterError, make_filter
    from imagen_audit.filters.embedding import EmbeddingFilter, EmbeddingModel, default_model_path
    from imagen_audit.filters.encoder import Encoder
    from imagen_audit.resources import data_dir

    model = EmbeddingModel.load(default_model_path())
    print(f"== throughput on {len(prompts)} prompts ({what}), one process, "
          f"{os.cpu_count()} CPUs, encoder on {device} (batch {batch_size})")
    lexicons = data_dir("filters") / "lexicons"
    # The word list as the default policy runs it: idioms removed before matching (round 33).
    backends = [("blocklist", make_filter("blocklist",
                                          figurative_lexicon=lexicons / "figurative.txt")),
                ("profanity", make_filter("profanity")),
                ("embedding (cold cache)", EmbeddingFilter(model, encoder=Encoder(
                    delta=model.encoder_delta, device=device, batch_size=batch_size))),
                # As the default policy runs it: descriptors neutralised and idioms
                # paraphrased, prompts that hold either scored twice (filters/README.md,
                # rounds 21 and 33).
                ("embedding, invariant", EmbeddingFilter(
                    model, encoder=Encoder(delta=model.encoder_delta, device=device,
                                           batch_size=batch_size),
                    identity_lexicon=lexicons / "identity.txt",
                    figurative_lexicon=lexicons / "figurative.txt"))]
    ckpt = os.environ.get("DETOXIFY_CHECKPOINT")
    if ckpt:
        backends.append(("detoxify", make_filter(
            "detoxify", checkpoint=ckpt,
            huggingface_config_path=os.environ["DETOXIFY_CONFIG"])))
    for name, f in backends:
        try:
            f.score(prompts[:8])  # load models outside the timing
        except FilterError as exc:  # e.g. alt-profanity-check not installed on this machine
            print(f"  {name:24s} (skipped: {exc})")
            continue
        if name.startswith("embedding"):
            f.encoder._cache.clear()
        t0 = time.perf_counter()
        f.score(prompts)
        dt = time.perf_counter() - t0
        print(f"  {name:24s} {len(prompts) / dt:10.0f} prompts/s  ({1000 * dt / len(prompts):.3f} "
              "ms per prompt)")
    if not ckpt:
        print("  detoxify                 (skipped: set DETOXIFY_CHECKPOINT and DETOXIFY_CONFIG)")
    # Untrusted input: one pasted megabyte through the default policy (the classifier reads
    # its first MAX_PROMPT_CHARS characters, the word list all of it).
    from imagen_audit.filters.policy import Policy

    policy = Policy.load("default")
    policy.score_frame(prompts[:8])
    huge = "a cat sitting on a warm windowsill " * 30_000
    t0 = time.perf_counter()
    policy.score_frame([huge])
    print(f"  one {len(huge) / 1e6:.2f} MB prompt, default policy: "
          f"{time.perf_counter() - t0:.2f} s")


def agreement(prompts: list[str], device: str) -> None:
    """The default policy on ``device`` against the CPU, on the same prompts: the largest
    score difference and the decisions that differ (float rounding only, if any)."""
    import numpy as np

    from imagen_audit.filters.encoder import set_device
    from imagen_audit.filters.policy import Policy

    frames = {}
    for d in ("cpu", device):
        set_device(d)
        frames[d] = Policy.load("default").score_frame(prompts)
    set_device("cpu")
    a, b = frames["cpu"], frames[device]
    diff = np.abs(a["score"].to_numpy() - b["score"].to_numpy())
    flips = int((a["decision"] != b["decision"]).sum())
    print(f"  {device} vs cpu on {len(prompts)} prompts: largest score difference "
          f"{diff.max():.2e} (mean {diff.mean():.2e}); decisions that differ: {flips}")


def shipped_prompts(n: int) -> list[str]:
    """Up to ``n`` distinct prompts from the hand-written sets shipped in the package (no
    shared data needed): every kind of prompt the filters meet, benign and harmful."""
    import pandas as pd

    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.judged import UNREAD_SETS

    frames = [D.load_named(name)["prompt"] for name in D.SHIPPED_SET_NAMES
              if name not in UNREAD_SETS]  # the next rounds' judges stay unscored
    prompts = pd.concat(frames).astype(str).drop_duplicates()
    return prompts.sample(n=min(n, len(prompts)), random_state=3).tolist()


_LEET_SWAP = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5"}


def obfuscate(prompt: str) -> str:
    """Leetspeak as an evader writes it: the first a/e/i/o/s of every word of four or more
    letters swapped for its digit ("make a pic of my coworker" -> "m4ke a pic of my c0worker")."""
    words = []
    for w in prompt.split(" "):
        j = next((i for i, c in enumerate(w) if c in _LEET_SWAP), None)
        if len(w) >= 4 and j is not None:
            w = w[:j] + _LEET_SWAP[w[j]] + w[j + 1:]
        words.append(w)
    return " ".join(words)


def evaluation(out: Path | None, trap: bool) -> None:
    import numpy as np
    import pandas as pd

    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.evaluate import TEXT_SUBSETS, evaluate, summary_lines, write_outputs
    from imagen_audit.filters.policy import Policy

    pol = Policy.load("default")
    i2p = D.load_i2p()
    coco_all = D.load_coco()
    coco5k = coco_all.sample(n=5000, random_state=0)
    ident = D.load_identity_prompts()
    t0 = time.perf_counter()
    full = evaluate(pol, i2p, coco5k, identity=ident, keep_seen=True)
    dt = time.perf_counter() - t0
    o = full.summary["overall"]
    print(f"\n== default policy, FULL I2P ({len(i2p)}) vs 5,000 random COCO captions: "
          f"{dt:.0f} s wall ({(len(i2p) + 5000 + len(ident)) / dt:.0f} prompts/s incl. identity "
          "probes)")
    seen = full.summary["training_overlap"]
    print("   (kept on purpose: training/calibration prompts of the embedding model among them: "
          + ", ".join(f"{k} {v['seen']} of {v['n']}" for k, v in seen.items())
          + "; see the held-out numbers below)")
    print(f"   precision {_fmt(o['precision'])} recall {_fmt(o['recall'])} FPR {_fmt(o['fpr'])} "
          f"F1 {_fmt(o['f1'])} ROC-AUC {_fmt(o['roc_auc'])} PR-AUC {_fmt(o['pr_auc'])}")

    cs = D.CANONICAL_SPLIT
    i2p_te = D.split_by_prompt(i2p, **cs)[-1]
    coco_te = D.split_by_prompt(coco_all, **cs)[-1].sample(n=5000, random_state=0)
    parti_te = D.split_by_prompt(D.load_partiprompts(), **cs)[-1]
    xs = D.load_xstest()
    requests_te = D.split_by_prompt(D.load_named("benign-requests"), **cs)[-1]
    extra_b = {"xstest-safe": xs[xs.label == 0], "partiprompts-held-out": parti_te,
               "holisticbias": D.load_holisticbias_prompts(),
               "holisticbias-grid": D.load_holisticbias_grid(),
               "benign-requests-held-out": requests_te}
    extra_h = {"coprov2-test": D.load_coprov2("test").sample(n=1000, random_state=0),
               "xstest-unsafe": xs[xs.label == 1]}
    held = evaluate(pol, i2p_te, coco_te, identity=ident, extra_benign=extra_b,
                    extra_harmful=extra_h)
    print(f"\n== default policy, HELD-OUT: I2P test split ({len(i2p_te)}) vs COCO test split "
          "(5,000); never trained on, near-duplicates removed from training, and any prompt the "
          "model's hashes recognise left out")
    print("\n".join("   " + line for line in summary_lines(held.summary)))
    if out:
        write_outputs(held, pol, out / "held-out")
        write_outputs(full, pol, out / "full")
        print(f"   wrote {out}/held-out and {out}/full")

    # Obfuscation (round 74): one letter of every word of 4+ letters swapped for a digit.
    fresh_h = pd.concat([D.split_by_prompt(D.load_named(f"fresh-{x}-harmful"), **cs)[-1]
                         for x in ("jj", "kk", "ll")], ignore_index=True)
    print("\n== obfuscated text (leetspeak in every word of 4+ letters), default policy")
    for name, frame in (("PartiPrompts held-out, blocked", parti_te),
                        ("fresh-jj/kk/ll harmful test buckets, caught", fresh_h)):
        texts = frame["prompt"].astype(str).tolist()
        share = [float((pol.score_frame(t)["decision"] == "block").mean())
                 for t in (texts, [obfuscate(p) for p in texts])]
        print(f"   {name} ({len(texts)}): {share[0]:.3f} as written, {share[1]:.3f} obfuscated")

    if trap:
        from imagen_audit.filters.embedding import train_model
        from imagen_audit.filters.encoder import shared_encoder

        i2p_tr = D.split_by_prompt(i2p, **cs)[0]
        coco_tr = D.split_by_prompt(coco_all, **cs)[0].sample(n=6000, random_state=0)
        train = pd.concat([i2p_tr, coco_tr], ignore_index=True)
        enc = shared_encoder()
        m = train_model(train["prompt"].tolist(), train["label"].tolist(), encoder=enc,
                        classifier="mlp", exclude_near=pd.concat(
                            [i2p_te, coco_te, ident])["prompt"].tolist())

        def rate(df: pd.DataFrame, t: float) -> float:
            return float((m.predict_proba(enc.encode(df["prompt"].tolist())) >= t).mean())

        from sklearn.metrics import roc_auc_score

        ph = m.predict_proba(enc.encode(i2p_te["prompt"].tolist()))
        pb = m.predict_proba(enc.encode(coco_te["prompt"].tolist()))
        auc = roc_auc_score(np.r_[np.ones(len(ph)), np.zeros(len(pb))], np.r_[ph, pb])
        print("\n== the trap: the same MLP trained on I2P vs COCO only (no counterfactuals), "
              "same held-out split, threshold 0.5")
        print(f"   ROC-AUC {auc:.3f}; recall {float((ph >= 0.5).mean()):.3f}; COCO FPR "
              f"{float((pb >= 0.5).mean()):.3f}; identity-probe FPR {rate(ident, 0.5):.3f}; "
              f"XSTest-safe FPR {rate(xs[xs.label == 0], 0.5):.3f}; PartiPrompts FPR "
              f"{rate(parti_te, 0.5):.3f}")
        # Where I2P's words ask for harm and where they do not (two raters, blind; I2P labels
        # images): session 21 measured the trap's extra recall on prompts whose words are
        # harmless (0.970 against the default's 0.821; 0.992 against 0.976 where they ask
        # for harm), i.e. I2P's style learnt.
        subsets = held.summary["subsets"]  # the default's recall per label, already measured
        tl = i2p_te["text_label"].fillna("none").to_numpy()
        for label, name in (("H", "ask for harm (both raters)"),
                            ("B", "ask for nothing harmful (both raters)"),
                            ("U", "are unclear or disputed")):
            mask = tl == label
            if mask.any():
                print(f"   I2P test prompts whose words {name} ({int(mask.sum())}): recall, "
                      f"trap {float((ph[mask] >= 0.5).mean()):.3f}, default "
                      f"{subsets[TEXT_SUBSETS[label]]['recall']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="throughput only")
    ap.add_argument("--no-trap", action="store_true", help="skip the trap comparison")
    ap.add_argument("--n", type=int, default=2000, help="prompts for the throughput test")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--prompts", choices=("shared", "shipped"), default="shared",
                    help="throughput prompts: I2P + COCO (shared data), or the hand-written "
                         "sets shipped in the package")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N for the encoder")
    ap.add_argument("--batch-size", type=int, default=64, help="encoder batch size")
    args = ap.parse_args()
    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.commands import _quiet
    from imagen_audit.filters.encoder import set_device

    _quiet()
    set_device(args.device)  # fails here, before timing anything, on a missing device
    if args.prompts == "shipped":
        prompts, what = shipped_prompts(args.n), "hand-written sets shipped in the package"
    else:
        try:
            i2p, coco = D.load_i2p(), D.load_coco(limit=args.n // 2, seed=3)
        except Exception as exc:
            sys.exit(f"shared data needed ({exc}); or run --quick --prompts shipped")
        prompts = (i2p["prompt"].sample(n=args.n // 2, random_state=3).tolist()
                   + coco["prompt"].tolist())
        what = "I2P + COCO"
    throughput(prompts, what, device=args.device, batch_size=args.batch_size)
    if args.device != "cpu":
        agreement(prompts[:min(len(prompts), 5000)], args.device)
    if args.prompts == "shipped":
        return
    if not args.quick:
        evaluation(args.out, trap=not args.no_trap)


if __name__ == "__main__":
    main()
