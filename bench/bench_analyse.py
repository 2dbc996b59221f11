"""Analysis plus report for a synthetic run of 100,000 annotated samples.

Goal (issue 4): under 30 s and under 2 GiB on the 2-core CPU machine. The annotation table
has the columns of ``RunStore.annotations_table()``: 157 occupations, ~640 samples each,
two cascade stages (so stage drift is measured too), 10% of images with a second face.
Prints the time of each part and the peak resident memory of the process.

    python bench/bench_analyse.py [--samples 100000] [--stages 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--occupations", type=int, default=157)
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from imagen_audit.analyse.synthetic import synthetic_annotations
    from imagen_audit.report.html import write_report_files
    from imagen_audit.report.inputs import inputs_from_tables

    per = max(1, args.samples // args.occupations)
    t0 = time.perf_counter()
    ann, base = synthetic_annotations(args.occupations, per,
                                      stages=tuple(range(1, args.stages + 1)),
                                      ita_shift=2.0, multi_face_rate=0.1, seed=0)
    t1 = time.perf_counter()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-analyse-"))
    inputs = inputs_from_tables(out, ann, base)
    path = write_report_files(inputs, out / "report")
    t2 = time.perf_counter()
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    samples = ann["sample_id"].nunique()
    print(f"samples {samples}, annotation rows {len(ann)}, stages {args.stages}")
    print(f"synthetic table   {t1 - t0:6.1f} s")
    print(f"analysis + report {t2 - t1:6.1f} s   (goal < 30 s)")
    print(f"peak RSS          {rss_gib:6.2f} GiB (goal < 2 GiB)")
    print(f"report            {path} ({path.stat().st_size / 1e6:.1f} MB), "
          f"report.json {(out / 'report' / 'report.json').stat().st_size / 1e6:.1f} MB")
    return 0 if (t2 - t1) < 30 and rss_gib < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
