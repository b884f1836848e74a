"""An independent, functional transcription of the reference `rcvit.py` eval forward.

It reads nothing but a state dict (reference parameter names) and uses only
torch.nn.functional, so it shares no code with `casvit_deploy.model`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _bn(sd, p, x):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"],
                        False, 0.0, 1e-5)


def _conv(sd, p, x, stride=1, padding=0, groups=1):
    return F.conv2d(x, sd[p + ".weight"], sd.get(p + ".bias"), stride, padding, 1, groups)


def _dw(sd, p, x):
    return _conv(sd, p, x, padding=1, groups=x.shape[1])


def _gate(sd, p, x):
    """oper_q / oper_k: SpatialOperation then ChannelOperation."""
    s = F.relu(_bn(sd, p + ".0.block.1", _dw(sd, p + ".0.block.0", x)))
    x = x * torch.sigmoid(_conv(sd, p + ".0.block.3", s))
    pooled = F.adaptive_avg_pool2d(x, 1)
    return x * torch.sigmoid(_conv(sd, p + ".1.block.1", pooled))


def _block(sd, p, x):
    li = _conv(sd, p + ".local_perception.network.0", x)
    li = F.gelu(_dw(sd, p + ".local_perception.network.2", _bn(sd, p + ".local_perception.network.1", li)))
    x = x + _conv(sd, p + ".local_perception.network.4", li)
    q, k, v = _conv(sd, p + ".attn.qkv", _bn(sd, p + ".norm1", x)).chunk(3, dim=1)
    mixed = _dw(sd, p + ".attn.dwc", _gate(sd, p + ".attn.oper_q", q) + _gate(sd, p + ".attn.oper_k", k)) * v
    x = x + _dw(sd, p + ".attn.proj", mixed)
    h = F.gelu(_conv(sd, p + ".mlp.fc1", _bn(sd, p + ".norm2", x)))
    return x + _conv(sd, p + ".mlp.fc2", h)


def reference_forward(sd: dict, layers, x: torch.Tensor, fork_feat: bool = False):
    x = F.relu(_bn(sd, "patch_embed.1", _conv(sd, "patch_embed.0", x, 2, 1)))
    x = F.relu(_bn(sd, "patch_embed.4", _conv(sd, "patch_embed.3", x, 2, 1)))
    feats = []
    for stage, depth in enumerate(layers):
        for b in range(depth):
            x = _block(sd, f"network.{2 * stage}.{b}", x)
        if fork_feat:
            feats.append(_bn(sd, f"norm{2 * stage}", x))
        if stage < 3:
            x = _bn(sd, f"network.{2 * stage + 1}.norm", _conv(sd, f"network.{2 * stage + 1}.proj", x, 2, 1))
    if fork_feat:
        return feats
    pooled = _bn(sd, "norm", x).flatten(2).mean(-1)
    out = F.linear(pooled, sd["head.weight"], sd["head.bias"])
    if "dist_head.weight" in sd:
        out = (out + F.linear(pooled, sd["dist_head.weight"], sd["dist_head.bias"])) / 2
    return out
