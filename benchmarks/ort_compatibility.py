"""Which ONNX Runtime releases load an artifact: run each given `.onnx` / `.ort` file in the
onnxruntime installed in the interpreter running this script, against the reference logits
in its folder, and print one line per file.

    # in the project venv: export the files and the reference
    python benchmarks/ort_compatibility.py --make OUT_DIR
    # in a venv holding only an older release (pip install "numpy<2" onnxruntime==1.17.3)
    /path/to/old-venv/bin/python benchmarks/ort_compatibility.py OUT_DIR

Only onnxruntime and numpy are needed to check; --make needs casvit-deploy. The results
for 1.15.1, 1.16.3, 1.17.3 and 1.18.1 are in benchmarks/ORT_COMPATIBILITY.md and in the
table of casvit_deploy/export/onnx_opset.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

RES = 64


def make(out: Path) -> None:
    """ONNX files at opsets 17-20 and `.ort` files at 18 and 20 of XS (seed 0), with an
    input and the eager logits for it."""
    import torch

    from casvit_deploy.formats.onnx.options import OnnxOptions
    from casvit_deploy.model import load_model
    from casvit_deploy.pipeline import export_model
    from casvit_deploy.quiet import quiet_third_party

    loaded = load_model(variant="xs")
    with quiet_third_party():
        for fmt, opset in [("onnx", o) for o in (17, 18, 19, 20)] + [("ort", 18), ("ort", 20)]:
            result = export_model(loaded, fmt, out / f"{fmt}{opset}", resolution=RES, options=OnnxOptions(opset),
                                  force=True)
            print(f"made {result.artifact} (first ONNX Runtime per manifest: "
                  f"{result.manifest.details['min_onnxruntime']})")
    x = np.random.default_rng(0).standard_normal((1, 3, RES, RES)).astype(np.float32)
    np.save(out / "input.npy", x)
    np.save(out / "reference.npy", loaded.model(torch.from_numpy(x)).detach().numpy())


def check(out: Path) -> None:
    import onnxruntime as ort

    x, reference = np.load(out / "input.npy"), np.load(out / "reference.npy")
    for path in sorted([*out.glob("*/*.onnx"), *out.glob("*/*.ort")]):
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(None, {"image": x})[0]
            verdict = f"loads, max abs vs eager {np.abs(got - reference).max():.1e}"
        except Exception as err:  # each release words its refusal differently
            verdict = "REFUSED: " + (str(err).splitlines() or [type(err).__name__])[0][:160]
        print(f"onnxruntime {ort.__version__}  {path.parent.name}/{path.name}: {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--make", action="store_true", help="export the files into FOLDER first")
    args = parser.parse_args()
    if args.make:
        args.folder.mkdir(parents=True, exist_ok=True)
        make(args.folder)
    check(args.folder)
