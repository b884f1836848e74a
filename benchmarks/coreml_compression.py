"""Reproduce the CoreML compression figures of benchmarks/COREML_COMPRESSION.md.

    python benchmarks/coreml_compression.py                  # XS at 224
    python benchmarks/coreml_compression.py --resolution 64  # quick

Weights: seeded random weights that behave like trained ones (model/trained_like.py), saved
as a checkpoint under --work (default models/coreml_compression, git-ignored, with the
exports). Each case is one `casvit export -f coreml` of that checkpoint (load check and
parity by the MIL reference interpreter included), then `casvit parity --inputs images` for the
agreement with fp32 eager on the bundled photographs. Sizes are the packages' bytes on disk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from casvit_deploy.store import manifests

CASVIT = str(Path(sys.executable).parent / "casvit")
CASES = {  # name -> export flags
    "fp32": ["-p", "fp32"],
    "fp16": ["-p", "fp16"],
    "int8 weights": ["-p", "int8"],
    "palettized 8-bit": ["--palettize", "8"],
    "palettized 6-bit": ["--palettize", "6"],
    "palettized 4-bit": ["--palettize", "4", "--deployment-target", "iOS18"],
    "w8a8": ["-p", "w8a8", "--deployment-target", "iOS17"],
}


def checkpoint(work: Path, resolution: int) -> Path:
    import torch

    from casvit_deploy.artifacts.preprocessing import Preprocessing
    from casvit_deploy.data.calibration import calibration_set
    from casvit_deploy.model.trained_like import trained_like_model

    path = work / f"casvit_xs_trained_like_{resolution}.pth"
    if not path.exists():
        images = torch.from_numpy(calibration_set(Preprocessing.for_resolution(resolution)).images)
        work.mkdir(parents=True, exist_ok=True)
        torch.save(trained_like_model("xs", images).state_dict(), path)
    return path


def measure(name: str, flags: list[str], ckpt: Path, work: Path, resolution: int) -> dict:
    out = work / name.replace(" ", "_")
    report = out / "export.json"
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([CASVIT, "export", "-f", "coreml", "-c", str(ckpt), "-r", str(resolution), "-o", str(out),
                    "--force", "--json", str(report), *flags], check=False)
    row = json.loads(report.read_text())["results"][0]
    if row["status"] != "ok":
        return {"case": name, "status": row["status"], "reason": row["reason"]}
    parity = out / "parity.json"
    subprocess.run([CASVIT, "parity", row["file"], "-c", str(ckpt), "--inputs", "images", "--json", str(parity)],
                   check=False, stdout=subprocess.DEVNULL)
    metrics = json.loads(parity.read_text())["reports"][0]["input_sets"][0]["outputs"][0]
    details = manifests.load(Path(row["file"])).details
    return {"case": name, "status": row["status"], "parity": row["parity"], "bytes": row["size_bytes"],
            "seconds": row["seconds"], "cosine": metrics["cosine"], "snr_db": metrics["snr_db"],
            "top1": metrics["top1_agreement"], "top5": metrics["top5_overlap"],
            "target": (details.compression or {}).get("minimum_target", "iOS16"),
            "precheck": (details.fp16_precheck or {}).get("summary", "")}


def markdown(rows: list[dict], resolution: int) -> str:
    fp32 = next(r["bytes"] for r in rows if r["case"] == "fp32")
    lines = [f"| package (XS, {resolution}) | min. target | size | % of fp32 | cosine | SNR dB | top-1 | top-5 | parity |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['case']} | | | | | | | | {r['status']}: {r['reason']} |")
            continue
        lines.append(f"| {r['case']} | {r['target']} | {r['bytes'] / 1e6:.2f} MB | {100 * r['bytes'] / fp32:.1f}% | "
                     f"{r['cosine']:.5f} | {r['snr_db']:.1f} | {r['top1']:.2f} | {r['top5']:.2f} | {r['parity']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--work", type=Path, default=Path("models/coreml_compression"))
    parser.add_argument("--case", action="append", choices=list(CASES), help="default: every case")
    args = parser.parse_args()
    ckpt = checkpoint(args.work, args.resolution)
    rows = [measure(name, CASES[name], ckpt, args.work, args.resolution) for name in (args.case or CASES)]
    (args.work / f"results_{args.resolution}.json").write_text(json.dumps(rows, indent=2))
    print(markdown(rows, args.resolution))


if __name__ == "__main__":
    main()
