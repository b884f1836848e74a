"""Shared fixtures: seeded models and checkpoints in the official training format."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from casvit_deploy.model import random_model
from casvit_deploy.store import manifests


def official_checkpoint(model: torch.nn.Module, ema_model: torch.nn.Module | None = None,
                        input_size: int = 224) -> dict:
    """The dict that the reference `utils.save_model` writes."""
    ckpt = {
        "model": model.state_dict(),
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "weight_decay": 0.05, "params": [0, 1]}]},
        "epoch": 299,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                   "_growth_tracker": 0},
        "args": argparse.Namespace(model="rcvit_xs", input_size=input_size, model_ema=ema_model is not None,
                                   lr=6e-3, output_dir="checkpoints/xs", crop_pct=None, batch_size=128),
    }
    if ema_model is not None:
        ckpt["model_ema"] = ema_model.state_dict()
    return ckpt


@pytest.fixture(scope="session")
def checkpoint_factory(tmp_path_factory):
    """make(variant, **opts) -> path of a seeded official-format checkpoint (cached per options)."""
    cache: dict = {}

    def make(variant: str = "xs", seed: int = 0, distillation: bool = False, ema: bool = True,
             num_classes: int = 1000, input_size: int = 224) -> Path:
        key = (variant, seed, distillation, ema, num_classes, input_size)
        if key not in cache:
            model = random_model(variant, seed=seed, distillation=distillation, num_classes=num_classes)
            ema_model = random_model(variant, seed=seed + 1, distillation=distillation,
                                     num_classes=num_classes) if ema else None
            path = tmp_path_factory.mktemp("ckpt") / f"casvit_{variant}.pth"
            torch.save(official_checkpoint(model, ema_model, input_size), path)
            cache[key] = path
        return cache[key]

    return make


@pytest.fixture(scope="session")
def xs_checkpoint(checkpoint_factory) -> Path:
    return checkpoint_factory("xs")


@pytest.fixture(scope="session")
def trained_like_checkpoint(tmp_path_factory):
    """make(variant, resolution=64, seed=0) -> path of a bare state dict whose random weights behave like
    trained ones on photographs (model/trained_like.py; BN statistics from the default calibration set)."""
    from casvit_deploy.artifacts.preprocessing import Preprocessing
    from casvit_deploy.data.calibration import calibration_set
    from casvit_deploy.model.trained_like import trained_like_model

    cache: dict = {}

    def make(variant: str = "xs", resolution: int = 64, seed: int = 0) -> Path:
        key = (variant, resolution, seed)
        if key not in cache:
            images = torch.from_numpy(calibration_set(Preprocessing.for_resolution(resolution)).images)
            path = tmp_path_factory.mktemp("trained_like") / f"casvit_{variant}_trained_like.pth"
            torch.save(trained_like_model(variant, images, seed).state_dict(), path)
            cache[key] = path
        return cache[key]

    return make


SMALL_RESOLUTION = 32


@pytest.fixture(scope="session")
def small_artifact(tmp_path_factory, worker_id):
    """get(format) -> a good artifact of XS at 32x32 with seeded random weights (the format's
    default precision: fp16 for CoreML), exported once per test run and shared by the xdist
    workers (the first exports, the others wait), with the system temp folder unwritable (an
    export that puts a temporary file there fails). Tests copy it before changing it."""
    from casvit_deploy.locks import folder_lock
    from casvit_deploy.model import load_model
    from casvit_deploy.pipeline import export_model
    from casvit_deploy.store.manifests import manifest_path
    from tests.fakes import system_temp_forbidden

    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / "small-artifacts"

    def get(fmt: str) -> Path:
        folder = shared / fmt
        folder.mkdir(parents=True, exist_ok=True)
        with folder_lock(folder, wait_s=1800):
            done = [p for p in folder.iterdir() if not p.name.startswith(".") and manifest_path(p).is_file()]
            if done:
                return done[0]
            with system_temp_forbidden(shared):  # every temporary file of an export: in its staging folder
                return export_model(load_model(None, "xs"), fmt, folder, resolution=SMALL_RESOLUTION).artifact

    return get


@pytest.fixture(scope="session")
def small_export(small_artifact):
    """get(fmt) -> (artifact, manifest) of small_artifact(fmt), as `.artifact` and `.manifest`."""
    from types import SimpleNamespace


    return lambda fmt: SimpleNamespace(artifact=(path := small_artifact(fmt)), manifest=manifests.load(path))


# What an mmdet/mmseg (mmcv) checkpoint holds besides its backbone: neck and heads.
DETECTOR_EXTRA_KEYS = {"neck.lateral_convs.0.conv.weight": (256, 48, 1, 1), "neck.lateral_convs.0.conv.bias": (256,),
                       "neck.fpn_convs.0.conv.weight": (256, 256, 3, 3), "rpn_head.rpn_conv.weight": (256, 256, 3, 3),
                       "rpn_head.rpn_cls.weight": (3, 256, 1, 1), "roi_head.bbox_head.fc_cls.weight": (81, 1024),
                       "roi_head.bbox_head.fc_cls.bias": (81,)}


def mmdet_checkpoint(backbone: torch.nn.Module, wrapper: str = "") -> dict:
    """The dict mmcv's `save_checkpoint` writes for a detector whose backbone is `backbone`."""
    state = {f"{wrapper}backbone.{k}": v for k, v in backbone.state_dict().items()}
    state |= {f"{wrapper}{k}": torch.zeros(shape) for k, shape in DETECTOR_EXTRA_KEYS.items()}
    meta = {"mmcv_version": "1.7.1", "time": "Thu Jan  1 00:00:00 2026", "epoch": 12, "iter": 88_000,
            "CLASSES": ("person", "bicycle", "car"), "config": "model = dict(type='MaskRCNN')", "env_info": "x"}
    return {"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4}]}}


@pytest.fixture(scope="session")
def xs_backbone_checkpoint(tmp_path_factory) -> Path:
    """A seeded XS backbone checkpoint in the mmdet layout."""
    path = tmp_path_factory.mktemp("mmdet") / "casvit_xs_backbone_mmdet.pth"
    torch.save(mmdet_checkpoint(random_model("xs", seed=1, fork_feat=True)), path)
    return path
