"""CAS-ViT exactly as the reference `rcvit.py` defines it, with its parameter names.

Submodules that a deploy-form rewrite folds away (norms, dropouts, a second head) may be
set to ``None``; `_maybe` then skips them. In the upstream form every one is present, and
the arithmetic is the reference's op for op.
"""

from __future__ import annotations

import torch
from torch import nn

from casvit_deploy.model.variants import Variant


def _maybe(module: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    return x if module is None else module(x)


def stem(in_chs: int, out_chs: int) -> nn.Sequential:
    """Two 3x3 stride-2 convs, each with BN and ReLU (stride 4 in total)."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs // 2, 3, 2, 1),
        nn.BatchNorm2d(out_chs // 2),
        nn.ReLU(),
        nn.Conv2d(out_chs // 2, out_chs, 3, 2, 1),
        nn.BatchNorm2d(out_chs),
        nn.ReLU(),
    )


class Embedding(nn.Module):
    """Downsampling between stages: 3x3 stride-2 conv, then BN."""

    def __init__(self, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, 3, 2, 1)
        self.norm: nn.Module | None = nn.BatchNorm2d(embed_dim)

    def forward(self, x):
        return _maybe(self.norm, self.proj(x))


class Mlp(nn.Module):
    """fc1 (1x1) → GELU → fc2 (1x1)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop: nn.Module | None = nn.Dropout(drop)

    def forward(self, x):
        x = _maybe(self.drop, self.act(self.fc1(x)))
        return _maybe(self.drop, self.fc2(x))


class SpatialOperation(nn.Module):
    """Spatial gate: x * sigmoid(conv1x1→1(relu(BN(dw3x3(x)))))."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, groups=dim),
            nn.BatchNorm2d(dim),
            nn.ReLU(True),
            nn.Conv2d(dim, 1, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.block(x)


class ChannelOperation(nn.Module):
    """Channel gate: x * sigmoid(conv1x1(avgpool(x)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(dim, dim, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.block(x)


class LocalIntegration(nn.Module):
    """1x1 conv → BN → depthwise 3x3 → GELU → 1x1 conv."""

    def __init__(self, dim: int):
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(dim, dim, 1, 1, 0),
            nn.BatchNorm2d(dim),
            nn.Conv2d(dim, dim, 3, 1, 1, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, 1, 1, 0),
        )

    def forward(self, x):
        return self.network(x)


class AdditiveTokenMixer(nn.Module):
    """CATM: proj(dwc(Φ(q) + Φ(k)) * v), Φ = spatial gate then channel gate.

    `qkv` is either the fused 1x1 conv (3·dim outputs, split with chunk) or, in the
    deploy form, a module that returns the tuple (q, k, v) itself.
    """

    def __init__(self, dim: int, attn_bias: bool = False, proj_drop: float = 0.0):
        super().__init__()
        self.qkv: nn.Module = nn.Conv2d(dim, 3 * dim, 1, bias=attn_bias)
        self.oper_q = nn.Sequential(SpatialOperation(dim), ChannelOperation(dim))
        self.oper_k = nn.Sequential(SpatialOperation(dim), ChannelOperation(dim))
        self.dwc = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.proj_drop: nn.Module | None = nn.Dropout(proj_drop)

    def forward(self, x):
        if isinstance(self.qkv, nn.Conv2d):
            q, k, v = self.qkv(x).chunk(3, dim=1)
        else:
            q, k, v = self.qkv(x)
        out = self.proj(self.dwc(self.oper_q(q) + self.oper_k(k)) * v)
        return _maybe(self.proj_drop, out)


class AdditiveBlock(nn.Module):
    """x + LI(x); x + CATM(BN1(x)); x + MLP(BN2(x))."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.local_perception = LocalIntegration(dim)
        self.norm1: nn.Module | None = nn.BatchNorm2d(dim)
        self.attn = AdditiveTokenMixer(dim)
        self.drop_path: nn.Module | None = nn.Identity()
        self.norm2: nn.Module | None = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.local_perception(x)
        x = x + _maybe(self.drop_path, self.attn(_maybe(self.norm1, x)))
        return x + _maybe(self.drop_path, self.mlp(_maybe(self.norm2, x)))


class FlattenMean(nn.Module):
    """The reference head's pooling: x.flatten(2).mean(-1)."""

    def forward(self, x):
        return x.flatten(2).mean(-1)


class CASViT(nn.Module):
    """CAS-ViT classifier, or with `fork_feat` the four-output dense-prediction backbone.

    Eval output with a distillation head is (head + dist_head) / 2, as in the reference.
    """

    out_indices = (0, 2, 4, 6)

    def __init__(self, variant: Variant, num_classes: int = 1000,
                 distillation: bool = False, fork_feat: bool = False):
        super().__init__()
        self.variant, self.fork_feat = variant, fork_feat
        dims, layers = variant.dims, variant.layers
        self.patch_embed = stem(3, dims[0])
        network: list[nn.Module] = []
        for i, (dim, depth) in enumerate(zip(dims, layers)):
            network.append(nn.Sequential(*(AdditiveBlock(dim) for _ in range(depth))))
            if i < len(dims) - 1:
                network.append(Embedding(dim, dims[i + 1]))
        self.network = nn.ModuleList(network)
        if fork_feat:
            for i_emb, i_layer in enumerate(self.out_indices):
                self.add_module(f"norm{i_layer}", nn.BatchNorm2d(dims[i_emb]))
            return
        self.num_classes = num_classes
        self.norm: nn.Module | None = nn.BatchNorm2d(dims[-1])
        self.pool: nn.Module = FlattenMean()
        self.head = nn.Linear(dims[-1], num_classes)
        self.dist_head: nn.Linear | None = nn.Linear(dims[-1], num_classes) if distillation else None
        for m in (self.head, self.dist_head):
            if m is not None:
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        """Stem and stages; with `fork_feat` the list of four normed stage outputs."""
        x = self.patch_embed(x)
        outs = []
        for idx, block in enumerate(self.network):
            x = block(x)
            if self.fork_feat and idx in self.out_indices:
                outs.append(getattr(self, f"norm{idx}")(x))
        return outs if self.fork_feat else x

    def forward(self, x):
        x = self.forward_features(x)
        if self.fork_feat:
            return x
        x = self.pool(_maybe(self.norm, x))
        if self.dist_head is None:
            return self.head(x)
        out = self.head(x), self.dist_head(x)
        return out if self.training else (out[0] + out[1]) / 2
