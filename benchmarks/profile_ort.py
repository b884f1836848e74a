"""Per-op profile of an ONNX artifact in ONNX Runtime (CPU), convs split by kind.

    python benchmarks/profile_ort.py models/cache/<key>/casvit_xs_224_fp32.onnx --threads 1

The same profile `casvit bench ARTIFACT --profile` prints (casvit_deploy/formats/onnx/
profile.py: ONNX Runtime's profiler, mean kernel time per run per op type, Conv split into
1x1 pointwise, 3x3 depthwise and dense 3x3).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from casvit_deploy.formats.onnx.profile import profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        found = profile(args.artifact, args.threads, args.runs, Path(work))
    print(f"{args.artifact.name}: {found.total_ms:.2f} ms per run ({found.engine}; {found.note})")
    for kind, count, ms, share in found.rows():
        print(f"  {kind:36s} {count:4d} {ms:7.3f} ms {100 * share:5.1f}%")


if __name__ == "__main__":
    main()
