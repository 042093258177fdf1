"""Patch embedders: turn a face image into the node features of a graph.

Both embedders return node features in the dense form ``[B, N, D]`` (``B`` graphs of ``N``
nodes each, node ``n`` of graph ``b`` is patch ``n`` in row-major grid order).
:func:`nodes_to_pyg` converts that form to PyG's flat ``[B * N, D]`` + ``batch`` vector at the
edge, for code that wants a :class:`torch_geometric.data.Batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MultiScalePatchEmbed", "StemPatchEmbed", "check_images", "nodes_to_pyg"]


def nodes_to_pyg(x: Tensor) -> tuple[Tensor, Tensor]:
    """Convert dense node features ``[B, N, D]`` to PyG's ``([B * N, D], batch [B * N])``."""
    if x.dim() != 3:
        raise ValueError(f"expected node features of shape [B, N, D], got {tuple(x.shape)}")
    num_graphs, num_nodes, dim = x.shape
    batch = torch.arange(num_graphs, device=x.device).repeat_interleave(num_nodes)
    return x.reshape(num_graphs * num_nodes, dim), batch


def _resample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Average-pool ``x`` down to ``size``; bilinearly upsample a map smaller than ``size``."""
    h, w = x.shape[-2:]
    if (h, w) == size:
        return x
    if h >= size[0] and w >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    if h <= size[0] and w <= size[1]:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    # One side larger, one smaller: pool the larger side, then upsample the smaller one.
    x = F.adaptive_avg_pool2d(x, (min(h, size[0]), min(w, size[1])))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def check_images(x: Tensor, in_chans: int) -> None:
    """Raise :class:`ValueError` unless ``x`` is a batch of ``in_chans``-channel images."""
    if x.dim() != 4 or x.shape[1] != in_chans:
        raise ValueError(
            f"expected images of shape [B, {in_chans}, H, W], got {tuple(x.shape)}; "
            "grayscale images are expanded to 3 channels by the data transform "
            "(PIL .convert('RGB')), not by the model"
        )


class MultiScalePatchEmbed(nn.Module):
    r"""Multi-scale feature fusion-based patch embedding (MSF²PE) from the `"Face2Nodes"
    <https://doi.org/10.1016/j.ins.2023.119640>`_ paper, §3.2 and Fig. 3.

    A trunk (the ResNet of :class:`pyg_fer.models.ResNetTrunk`) yields the four stage
    outputs :math:`X_s \in \mathbb{R}^{C_s \times H_s
    \times W_s}`; each is mapped by a 1×1 convolution to :math:`C'_s` channels and resampled to
    the target grid :math:`H_t \times W_t`, the four maps are concatenated, and a 1×1
    convolution + BatchNorm + GELU fuses them to :math:`D` channels:

    .. math::
        X'_s &= \mathrm{AvgPool}(\mathrm{Conv}_{1\times1}(X_s)), \quad s = 1, 2, 3 \qquad (1)

        X'_4 &= \mathrm{Conv}_{1\times1}(X_4) \qquad (2)

        X_c &= \mathrm{Concat}(X'_1, X'_2, X'_3, X'_4) \qquad (3)

        X_f &= \mathrm{GELU}(\mathrm{BN}(\mathrm{Conv}_{1\times1}(X_c))) \qquad (4)

    Each grid cell is one node, so :math:`N = H_t W_t`. The paper's grid is the last stage's
    (7×7 at 224×224); 14×14 and 28×28 (Table 6) are supported too: a stage larger than the grid
    is average-pooled to it, a stage smaller than the grid (``X_4`` for 14×14; ``X_3`` and
    ``X_4`` for 28×28) is upsampled by bilinear interpolation. Pooling (and interpolation) is
    applied *before* the 1×1 convolution: both are linear maps whose weights sum to one, so the
    result equals Eq. (1) exactly at a fraction of the multiply-adds.

    Args:
        trunk (torch.nn.Module): a CNN given as ``forward_stem(images)`` followed by the
            modules ``stages`` (finest first), each stage's output described in
            ``feature_info`` (a list of dicts with ``num_chs``), as
            :class:`~pyg_fer.models.ResNetTrunk` is. Built by the models layer (with
            its weights) and passed in.
        embed_dim (int): node feature size :math:`D`. (default: :obj:`512`)
        grid_size (int or tuple): target grid :math:`H_t \times W_t`. (default: :obj:`7`)
        stage_channels (int or sequence of int, optional): the 1×1 widths :math:`C'_s`, which
            the paper leaves open; an int means the same width for every stage, :obj:`None`
            means :math:`C'_s = C_s`. The default 64 is the reading closest to the paper's
            Table 2 parameter count (``benchmarks/complexity.py``, ``docs/design.md``).
            (default: :obj:`64`)
        in_chans (int): image channels; only 3 is supported by the trunk. (default: :obj:`3`)

    Shapes:
        - **input:** images :math:`(B, 3, H, W)`
        - **output:** node features :math:`(B, H_t W_t, D)`
    """

    def __init__(
        self,
        trunk: nn.Module,
        embed_dim: int = 512,
        grid_size: int | tuple[int, int] = 7,
        stage_channels: int | Sequence[int] | None = 64,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if in_chans != 3:
            raise ValueError(
                f"MultiScalePatchEmbed takes 3-channel images, got in_chans={in_chans}"
            )
        self.embed_dim = embed_dim
        self.grid_size = _pair(grid_size, "grid_size")
        self.num_nodes = self.grid_size[0] * self.grid_size[1]
        self.in_chans = in_chans
        self.trunk = trunk
        in_channels = tuple(int(info["num_chs"]) for info in trunk.feature_info)
        if stage_channels is None:
            stage_channels = in_channels
        elif isinstance(stage_channels, int):
            stage_channels = (stage_channels,) * len(in_channels)
        stage_channels = tuple(int(c) for c in stage_channels)
        if len(stage_channels) != len(in_channels) or min(stage_channels) < 1:
            raise ValueError(
                f"stage_channels must be a positive int or {len(in_channels)} positive ints "
                f"(one per trunk stage), got {stage_channels}"
            )
        self.stage_channels = stage_channels
        self.proj = nn.ModuleList(
            [
                nn.Conv2d(c_in, c_out, kernel_size=1)
                for c_in, c_out in zip(in_channels, stage_channels, strict=True)
            ]
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(sum(stage_channels), embed_dim, kernel_size=1, bias=False),
            nn.BatchNorm2d(embed_dim),
            nn.GELU(),
        )
        self.feature_info: list[dict[str, Any]] = [
            dict(info, module=f"trunk.{info['module']}") for info in trunk.feature_info
        ] + [dict(num_chs=embed_dim, reduction=None, module="fuse")]

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.in_chans)
        # Stage by stage: each map is reduced to the grid as soon as it exists (this order also
        # fixes the float summation order of the trunk's gradients).
        x = self.trunk.forward_stem(x)
        fused = []
        for stage, proj in zip(self.trunk.stages, self.proj, strict=True):
            x = stage(x)
            fused.append(proj(_resample(x, self.grid_size)))
        x = self.fuse(torch.cat(fused, dim=1))
        return x.flatten(2).transpose(1, 2)

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        # Checkpoints written before the embedder took its trunk (pyg-fer 0.1.0 up to commit
        # 5875d88) hold the ResNet trunk as stem.0 (conv1), stem.1 (bn1) and stages.<i>
        # (layer<i+1>); rename those keys to the trunk's own names so they still load.
        legacy = {f"{prefix}stem.0.": f"{prefix}trunk.conv1.",
                  f"{prefix}stem.1.": f"{prefix}trunk.bn1.",
                  **{f"{prefix}stages.{i}.": f"{prefix}trunk.layer{i + 1}." for i in range(4)}}
        for key in [k for k in state_dict if k.startswith(tuple(legacy))]:
            old = next(start for start in legacy if key.startswith(start))
            state_dict[legacy[old] + key[len(old):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({type(self.trunk).__name__}, "
            f"embed_dim={self.embed_dim}, grid_size={self.grid_size}, "
            f"stage_channels={self.stage_channels})"
        )


class StemPatchEmbed(nn.Module):
    r"""ViG's convolutional stem (the "base patch embedding" of Face2Nodes' Table 3), from
    `"Vision GNN: An Image is Worth Graph of Nodes" <https://arxiv.org/abs/2206.00272>`_.

    Four stride-2 3×3 convolutions (widths :math:`D/8, D/4, D/2, D`) with BatchNorm + GELU, then
    a stride-1 3×3 convolution + BatchNorm, i.e. a stride-16 map (14×14 at 224×224), plus a
    learnable position embedding as in ViG's isotropic models. When ``grid_size`` differs from
    the stride-16 map (e.g. 7×7 so that the Table 3 ablation keeps Face2Nodes' :math:`N = 49`),
    the map is resampled to the grid like :class:`MultiScalePatchEmbed` does (average pooling
    down, bilinear up) before the position embedding is added:

    .. math::
        X = \mathrm{Resample}(\mathrm{Stem}(I)) + P, \quad P \in \mathbb{R}^{D \times H_t W_t}

    Args:
        embed_dim (int): node feature size :math:`D`. (default: :obj:`512`)
        grid_size (int or tuple): target grid. (default: :obj:`14`)
        in_chans (int): image channels. (default: :obj:`3`)

    Shapes:
        - **input:** images :math:`(B, C, H, W)`
        - **output:** node features :math:`(B, H_t W_t, D)`
    """

    def __init__(
        self,
        embed_dim: int = 512,
        grid_size: int | tuple[int, int] = 14,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if embed_dim % 8 != 0:
            raise ValueError(f"embed_dim must be divisible by 8, got {embed_dim}")
        self.embed_dim = embed_dim
        self.grid_size = _pair(grid_size, "grid_size")
        self.num_nodes = self.grid_size[0] * self.grid_size[1]
        self.in_chans = in_chans
        widths = [embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim]
        layers: list[nn.Module] = []
        c_in = in_chans
        for width in widths:
            layers += [nn.Conv2d(c_in, width, 3, stride=2, padding=1), nn.BatchNorm2d(width),
                       nn.GELU()]
            c_in = width
        layers += [nn.Conv2d(embed_dim, embed_dim, 3, padding=1), nn.BatchNorm2d(embed_dim)]
        self.stem = nn.Sequential(*layers)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *self.grid_size))
        self.feature_info: list[dict[str, Any]] = [
            dict(num_chs=embed_dim, reduction=16, module="stem")
        ]

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.in_chans)
        x = _resample(self.stem(x), self.grid_size) + self.pos_embed
        return x.flatten(2).transpose(1, 2)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(embed_dim={self.embed_dim}, grid_size={self.grid_size})"


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value}")
    return (int(value[0]), int(value[1]))
