"""Train CAS-ViT-XS on scikit-learn's handwritten digits: a real checkpoint anyone can rebuild here.

    python benchmarks/train_digits.py                                     # train (minutes on 2 cores)
    python benchmarks/train_digits.py --split-only --split-dir DIR        # only the held-out PNGs (seconds)

Data: `sklearn.datasets.load_digits` (1,797 gray 8x8 images, shipped inside the wheel, no
download), split per class with a seeded permutation (20% held out). Each digit is upsampled
(bicubic) to the model's input size, padded with black to the size the project's evaluation
transform first resizes to (`Preprocessing.for_resolution`: int(size / 0.875), 36 for 32) and
stored as a uint8 RGB image. That transform (resize to 36, an identity here; centre 32x32 crop;
ImageNet normalization) then gives back exactly the upsampled digit. The model is trained on
those uint8 images passed through the project's own `preprocess`, so the held-out PNGs this
script writes, read back by the project's pipeline, are bit for bit what it evaluates.

Threads: one by default. On this shared 2-core machine two threads ran about 5x slower than one
whenever other jobs held the cores (each parallel op waits for both of its threads), and the
thread count changes floating-point sums, so it is part of the recipe: the same seed and thread
count give the same checkpoint bytes; another count gives other bytes (two threads: 357 of 359 right).

Output: the checkpoint in the official layout (`model`: fp16 state dict with upstream names;
`epoch`; `args`: an argparse.Namespace whose `input_size` makes 32 the native resolution), the
held-out split as an ImageFolder tree (one folder per class, PNG files) and a JSON summary.
Held-out top-1 is measured on the saved checkpoint, read back through `load_model`, on the
written PNGs read back through the project's image reader and evaluation transform.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = dict(checkpoint=ROOT / "models" / "casvit_xs_digits.pth",
                split_dir=ROOT / "models" / "digits_heldout",
                summary=ROOT / "benchmarks" / "train_digits.json")
VARIANT, NUM_CLASSES = "xs", 10
RECIPE = dict(resolution=32, heldout_fraction=0.2, seed=0, epochs=10, batch_size=64, lr=2e-3,
              weight_decay=0.05, warmup_epochs=1, label_smoothing=0.1, max_shift=2, threads=1)


def preprocessing(resolution: int):
    """The project's evaluation transform at `resolution` (resize to int(res/0.875), centre crop)."""
    from casvit_deploy.artifacts.preprocessing import Preprocessing

    return Preprocessing.for_resolution(resolution)


def digit_images(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, R, R, 3) uint8 images, R the evaluation transform's resize size, and (N,) labels:
    each 8x8 digit upsampled (bicubic) to `resolution` and padded with black where the
    transform's centre crop cuts."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pre = preprocessing(resolution)
    gray = torch.from_numpy(digits.images / 16.0).float()[:, None]
    up = F.interpolate(gray, size=(resolution, resolution), mode="bicubic", align_corners=False).clamp(0, 1)
    before = (pre.resize - resolution) // 2  # where preprocess's centre crop starts
    up = F.pad(up, (before, pre.resize - resolution - before) * 2)
    pixels = (up[:, 0] * 255).round().to(torch.uint8).numpy()
    return np.repeat(pixels[..., None], 3, axis=3), digits.target.astype(np.int64)


def split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices, sorted: per class, a seeded permutation's first
    round(fraction * n) images are held out."""
    rng = np.random.default_rng(seed)
    heldout = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        heldout.extend(members[:round(fraction * len(members))])
    mask = np.zeros(len(labels), bool)
    mask[heldout] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def write_split(directory: Path, images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> int:
    """Write images[indices] as an ImageFolder tree, directory/<label>/<index>.png; the count.
    A folder that already holds other images is refused: they would join the evaluation."""
    import skimage.io

    names = {f"{labels[i]}/{i:04d}.png": i for i in indices}
    strays = sorted({p.relative_to(directory).as_posix() for p in Path(directory).glob("*/*.png")} - set(names))
    if strays:
        raise SystemExit(f"{directory} holds {len(strays)} images of another split (e.g. {strays[0]}); "
                         "give an empty or new folder")
    for name, index in names.items():
        (Path(directory) / name).parent.mkdir(parents=True, exist_ok=True)
        skimage.io.imsave(Path(directory) / name, images[index], check_contrast=False)
    return len(names)


def model_inputs(images: np.ndarray, resolution: int) -> torch.Tensor:
    """(N, 3, res, res) float32: `images` through the project's own evaluation transform."""
    from casvit_deploy.data.images import preprocess

    pre = preprocessing(resolution)
    return torch.from_numpy(np.stack([preprocess(image, pre) for image in images]))


def read_split(directory: Path, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of an ImageFolder tree (folders named by label), read by the project's
    own image reader and evaluation transform at `resolution`."""
    from casvit_deploy.data.images import photo_batch

    pre = preprocessing(resolution)
    xs, ys = [], []
    for folder in sorted((p for p in Path(directory).iterdir() if p.is_dir()), key=lambda p: int(p.name)):
        batch, _ = photo_batch(pre, folder)
        xs.append(torch.from_numpy(batch))
        ys += [int(folder.name)] * len(batch)
    return torch.cat(xs), torch.tensor(ys)


def seed_everything(seed: int, threads: int) -> None:
    """Fix every random source and the thread count; deterministic kernels only."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to `max_shift` pixels each way; the border pixels fill the gap."""
    if max_shift == 0:
        return x
    size = x.shape[-1]
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift + 1, (len(x), 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + size, dx:dx + size] for i, (dy, dx) in enumerate(offsets)])


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to `peak`, then cosine decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train(x: torch.Tensor, y: torch.Tensor, recipe: dict, max_steps: int | None = None,
          log=print) -> torch.nn.Module:
    """A CAS-ViT-XS with a 10-class head trained on (x, y) by `recipe` (AdamW, warm-up and
    cosine schedule, label smoothing, random shifts); stops after `max_steps` if given."""
    from casvit_deploy.model import build_model

    seed_everything(recipe["seed"], recipe["threads"])
    model = build_model(VARIANT, num_classes=NUM_CLASSES).train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    generator = torch.Generator().manual_seed(recipe["seed"])
    per_epoch = math.ceil(len(x) / recipe["batch_size"])
    total = recipe["epochs"] * per_epoch
    step = 0
    for epoch in range(recipe["epochs"]):
        order, losses = torch.randperm(len(x), generator=generator), []
        for batch in order.split(recipe["batch_size"]):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, recipe["warmup_epochs"] * per_epoch, recipe["lr"])
            inputs = random_shift(x[batch], recipe["max_shift"], generator)
            loss = F.cross_entropy(model(inputs), y[batch], label_smoothing=recipe["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if max_steps is not None and step >= max_steps:
                return model.eval()
        log(f"epoch {epoch + 1}/{recipe['epochs']}: train loss {np.mean(losses):.4f}")
    return model.eval()


@torch.no_grad()
def top1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` (eval mode) on (x, y)."""
    model.eval()
    predicted = torch.cat([model(chunk).argmax(1) for chunk in x.split(batch_size)])
    return float((predicted == y).float().mean())


def save_checkpoint(model: torch.nn.Module, path: Path, recipe: dict) -> None:
    """The official training-checkpoint layout: `model` (fp16 weights, upstream names), `epoch`,
    and `args` (argparse.Namespace) with `input_size`, the native resolution `casvit` reads."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    args = argparse.Namespace(model=f"rcvit_{VARIANT}", nb_classes=NUM_CLASSES, data_set="sklearn-digits",
                              input_size=recipe["resolution"], **{k: v for k, v in recipe.items() if k != "resolution"})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "epoch": recipe["epochs"] - 1, "args": args}, path)


def evaluate_checkpoint(path: Path, split_dir: Path) -> float:
    """Top-1 of a checkpoint, loaded the way `casvit` loads it, on an ImageFolder tree read at
    the checkpoint's native resolution."""
    from casvit_deploy.model import load_model

    loaded = load_model(path)
    return top1(loaded.model, *read_split(split_dir, loaded.native_resolution.height))


def summary(path: Path, recipe: dict, accuracy: float, seconds: dict, sizes: dict) -> dict:
    """What the run produced and on what: the figures ACCURACY.md and the tests quote. The
    machine is shared: the load average says how loaded it was when training ended, and the
    CPU seconds (all threads) change far less with the load than the wall time does."""
    from casvit_deploy.machine import cpu_model
    from casvit_deploy.model.checkpoint import sha256_of

    return {"heldout_top1": accuracy, "heldout_correct": round(accuracy * sizes["heldout"]),
            "train_seconds": round(seconds["wall"], 1), "train_cpu_seconds": round(seconds["cpu"], 1),
            "epochs": recipe["epochs"],
            "seed": recipe["seed"], "split": sizes, "checkpoint": path.name,
            "checkpoint_bytes": path.stat().st_size, "checkpoint_sha256": sha256_of(path),
            "recipe": recipe, "torch": torch.__version__, "cpu": cpu_model(),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULTS["checkpoint"])
    parser.add_argument("--split-dir", type=Path, default=DEFAULTS["split_dir"],
                        help="where the held-out split is written (ImageFolder tree of PNGs)")
    parser.add_argument("--summary", type=Path, default=DEFAULTS["summary"], help="JSON summary path")
    parser.add_argument("--split-only", action="store_true", help="write the held-out split and stop")
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    parser.add_argument("--seed", type=int, default=RECIPE["seed"])
    parser.add_argument("--threads", type=int, default=RECIPE["threads"],
                        help="torch threads (part of the recipe: another count gives other bytes)")
    args = parser.parse_args(argv)
    recipe = RECIPE | {"epochs": args.epochs, "seed": args.seed, "threads": args.threads}

    images, labels = digit_images(recipe["resolution"])
    train_idx, heldout_idx = split_indices(labels, recipe["heldout_fraction"], recipe["seed"])
    written = write_split(args.split_dir, images, labels, heldout_idx)
    print(f"wrote {written} held-out images to {args.split_dir}")
    if args.split_only:
        return 0

    x, y = model_inputs(images, recipe["resolution"]), torch.from_numpy(labels)
    start, cpu_start = time.perf_counter(), time.process_time()
    model = train(x[train_idx], y[train_idx], recipe)
    seconds = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}
    save_checkpoint(model, args.checkpoint, recipe)
    accuracy = evaluate_checkpoint(args.checkpoint, args.split_dir)
    sizes = {"train": len(train_idx), "heldout": len(heldout_idx)}
    result = summary(args.checkpoint, recipe, accuracy, seconds, sizes)
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
