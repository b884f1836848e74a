"""Per-op profile of ExecuTorch `.pte` programs (XNNPACK delegate and portable kernels).

    python benchmarks/profile_executorch.py models/cache/<key>/casvit_xs_224_fp32.pte [...] --threads 2

The same profile `casvit bench ARTIFACT --profile` prints (casvit_deploy/formats/executorch/
profile.py: ExecuTorch's event tracer times every XNNPACK operator inside the delegate and
every portable kernel outside it; per op kind the sum of the per-op medians and its share of
the median `Method::execute`; "untraced time" is execute time no op event covers).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from casvit_deploy.bench.backends import known_backends
from casvit_deploy.bench.process import process_settings
from casvit_deploy.formats.executorch.profile import profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--stat", choices=("p50", "min"), default="p50", help="per-op statistic over the runs")
    args = parser.parse_args()
    with process_settings(args.threads, [known_backends()["executorch"]]):
        for path in args.artifacts:
            with tempfile.TemporaryDirectory() as work:
                found = profile(path, args.threads, args.runs, Path(work), args.stat)
            print(f"{path}: {found.total_ms:.2f} ms per run ({found.engine}; {found.note})")
            for kind, count, ms, share in found.rows():
                print(f"  {kind:40s} {count:4d} {ms:7.3f} ms {100 * share:5.1f}%")


if __name__ == "__main__":
    main()
