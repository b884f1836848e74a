"""Reproduce the int8 figures of benchmarks/INT8.md in one command.

    python benchmarks/int8_bench.py                      # speed (XS) and fidelity (XS, S, M, T)
    python benchmarks/int8_bench.py --skip-fidelity      # speed only (about 15 min on a quiet machine)

Weights: seeded random weights that behave like trained ones (model/trained_like.py), saved
as checkpoints under --work (default models/int8_bench, git-ignored, with the export cache
and the exports) so that every command below uses the user's path (`--checkpoint`). The
reports (JSON, Markdown) go to --reports (default benchmarks/int8).

Speed: `casvit bench -c CKPT -b executorch -b onnxruntime -p fp32 -p int8 --threads 2
--rounds R`, the four cases interleaved in every round; speed-up = fp32 p50 / int8 p50 of
the same backend. Fidelity: `casvit export -p int8` with the defaults and with
`--auto-keep-float` (target cosine 0.999) for each variant and format; the agreement with
fp32 eager on the bundled photographs and the blocks kept float come from the manifests.
`uptime` load averages are printed next to every figure: on a shared machine ratios move.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from casvit_deploy.machine import cpu_model, describe_int8
from casvit_deploy.store import manifests

CASVIT = [str(Path(sys.executable).parent / "casvit")]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(args: list[str]) -> None:
    print(f"$ casvit {' '.join(args)}   (load {load_average()})", flush=True)
    subprocess.run(CASVIT + args, check=False)


def checkpoint(out: Path, variant: str, resolution: int) -> Path:
    """A trained-like seeded checkpoint of `variant` (made once)."""
    import torch

    from casvit_deploy.artifacts.preprocessing import Preprocessing
    from casvit_deploy.data.calibration import calibration_set
    from casvit_deploy.model.trained_like import trained_like_model

    path = out / "checkpoints" / f"casvit_{variant}_trained_like.pth"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        images = torch.from_numpy(calibration_set(Preprocessing.for_resolution(resolution)).images)
        torch.save(trained_like_model(variant, images, seed=0).state_dict(), path)
    return path


def speed(variant: str, ckpt: Path, args) -> None:
    report = args.reports / f"speed_{variant}.json"
    run(["bench", "-c", str(ckpt), "-v", variant, "-r", str(args.resolution), "-b", "executorch", "-b", "onnxruntime",
         "-p", "fp32", "-p", "int8", "--threads", str(args.threads), "--rounds", str(args.rounds), "--iters",
         str(args.iters), "--no-baseline", "--cache-dir", str(args.work / "cache"), "--json", str(report),
         "--markdown", str(args.reports / f"speed_{variant}.md")])
    print(f"load after: {load_average()}")
    data = json.loads(report.read_text())
    for r in data["results"]:
        per_round = ", ".join(f"{ms:.2f}" for ms in r["round_p50_ms"])
        print(f"  {r['backend']:12s} {r['precision']} p50 {r['p50_ms']:.2f} ms (rounds: {per_round}) "
              f"speed-up vs fp32 {r.get('speedup_vs_fp32') or 1:.2f}x, size {r['artifact_mb']:.2f} MB")
    for backend in ("executorch", "onnxruntime"):
        rows = {r["precision"]: r for r in data["results"] if r["backend"] == backend}
        if {"fp32", "int8"} <= set(rows):
            ratios = sorted(f / i for f, i in zip(rows["fp32"]["round_p50_ms"], rows["int8"]["round_p50_ms"]))
            print(f"  {backend}: median of per-round fp32/int8 ratios {ratios[len(ratios) // 2]:.2f}x "
                  f"(range {ratios[0]:.2f}-{ratios[-1]:.2f})")


def fidelity(variant: str, ckpt: Path, args) -> list[dict]:
    rows = []
    for label, extra in (("default", []), ("auto-keep-float", ["--auto-keep-float", "--min-cosine", "0.999"])):
        folder = args.work / "exports" / f"{variant}_{label}"
        run(["export", "-c", str(ckpt), "-v", variant, "-r", str(args.resolution), "-f", "onnx,executorch",
             "-p", "int8", "-o", str(folder), "--force", *extra])
        for artifact in sorted(p for p in folder.iterdir() if p.suffix in (".onnx", ".pte")):
            manifest = manifests.load(artifact)
            q = manifest.quantization
            kept = [k.target for k in q.kept_float]
            latest = manifest.latest_parity
            rows.append({"variant": variant, "format": manifest.format, "setting": label,
                         "kept_float": kept, "float_blocks": len([k for k in kept if k != "residual-adds"]),
                         **{k: q.agreement.get(k) for k in ("cosine", "snr_db", "top1", "top5", "samples")},
                         "size_mb": manifest.size_bytes / 2**20,
                         "parity": latest.status.value if latest else "not run"})
            r = rows[-1]
            print(f"  {variant} {r['format']:10s} {label:15s} cosine {r['cosine']:.5f} SNR {r['snr_db']:.1f} dB "
                  f"top-1 {r['top1']:.3f} top-5 {r['top5']:.3f} float blocks {r['float_blocks']} {kept} "
                  f"parity {r['parity']}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("models/int8_bench"))
    parser.add_argument("--reports", type=Path, default=Path("benchmarks/int8"))
    parser.add_argument("--speed-variants", nargs="*", default=["xs"])
    parser.add_argument("--fidelity-variants", nargs="*", default=["xs", "s", "m", "t"])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-fidelity", action="store_true")
    args = parser.parse_args()
    args.reports.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_model()} ({describe_int8()}); load {load_average()}")
    if not args.skip_speed:
        for variant in args.speed_variants:
            speed(variant, checkpoint(args.work, variant, args.resolution), args)
    if not args.skip_fidelity:
        rows = [row for v in args.fidelity_variants
                for row in fidelity(v, checkpoint(args.work, v, args.resolution), args)]
        (args.reports / "fidelity.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
