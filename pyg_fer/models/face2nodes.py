"""Face2Nodes (Jiang et al., Information Sciences 2023) and its Table 3/4 ablations."""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import torch.nn as nn
from torch import Tensor

from pyg_fer.models._builder import build_model_with_cfg
from pyg_fer.models._registry import register_model
from pyg_fer.models.backbone import ResNetTrunk
from pyg_fer.nn.block import RDGCNBlock, dilation_schedule
from pyg_fer.nn.embed import MultiScalePatchEmbed, StemPatchEmbed

__all__ = ["Face2Nodes", "EMBEDDERS", "face2nodes", "face2nodes_mr", "face2nodes_stem"]

EMBEDDERS = ("msf2pe", "stem")


class Face2Nodes(nn.Module):
    r"""Face2Nodes from `"Face2Nodes: Learning facial expression representations with
    relation-aware dynamic graph convolution networks"
    <https://doi.org/10.1016/j.ins.2023.119640>`_ (§3, Fig. 2).

    An embedder turns the image into :math:`N` node features (MSF²PE, Eq. 1-4, or ViG's stem),
    :math:`L` :class:`~pyg_fer.nn.RDGCNBlock` s (Eq. 9-10) each rebuild a dilated k-NN
    graph (dilation :math:`\lceil l/4 \rceil`) and convolve on it, the nodes are averaged and the
    recognition head classifies:

    .. math::
        \hat{y} = W_2\,\mathrm{GELU}\big(\mathrm{BN}(W_1 \tfrac{1}{N}\textstyle\sum_i
        x^{L}_i)\big), \quad W_1 \in \mathbb{R}^{D/2 \times D}

    Defaults are the paper's §4.3: ResNet-18 MSF²PE, :math:`N = 49`, :math:`D = 512`,
    :math:`L = 8`, :math:`k = 9`, RG-Conv, 224×224 images.

    Args:
        num_classes (int): expression classes. (default: :obj:`7`)
        img_size (int): input size recorded in ``cfg``. (default: :obj:`224`)
        in_chans (int): image channels (3). (default: :obj:`3`)
        embedder (str): ``"msf2pe"`` or ``"stem"`` (Table 3 baseline). (default: ``"msf2pe"``)
        embed_dim (int): node feature size :math:`D`. (default: :obj:`512`)
        grid_size (int): nodes per side; :math:`N` = ``grid_size ** 2`` (7, 14, 28 in Table 6).
            (default: :obj:`7`)
        depth (int): number of RDGCN blocks :math:`L` (Table 5). (default: :obj:`8`)
        k (int): neighbours per node. (default: :obj:`9`)
        conv (str): ``"rg"``, ``"mr"`` (Table 4 baseline) or ``"edge"``. (default: ``"rg"``)
        gate (str): RG-Conv gate ``"scalar"`` or ``"channel"``. (default: ``"scalar"``)
        dilations (sequence of int, optional): per-block dilation; :obj:`None` means
            :func:`~pyg_fer.nn.dilation_schedule`. (default: :obj:`None`)
        ffn_ratio (float): FFN hidden size over :math:`D`. (default: :obj:`4.0`)
        head_hidden (int, optional): head hidden size; :obj:`None` means :math:`D/2`.
            (default: :obj:`None`)
        backbone (str): MSF²PE trunk. (default: ``"resnet18"``)
        weights: MSF²PE trunk weights (``None``, a torchvision weights enum, or a local
            checkpoint path). (default: :obj:`None`)
        stage_channels (int or sequence, optional): MSF²PE 1×1 widths :math:`C'_s`
            (:obj:`None`: :math:`C'_s = C_s`). (default: :obj:`64`, see ``docs/design.md``)
        knn_backend (str): k-NN backend. (default: ``"auto"``)
        cosine (bool): cosine k-NN distance. (default: :obj:`False`)
        stochastic (bool): stochastic dilation in training. (default: :obj:`False`)
        epsilon (float): its probability. (default: :obj:`0.2`)
        drop_path_rate (float): stochastic depth, linearly increasing over the blocks.
            (default: :obj:`0.0`)
        drop_rate (float): dropout before the last head layer. (default: :obj:`0.0`)
    """

    def __init__(
        self,
        num_classes: int = 7,
        img_size: int = 224,
        in_chans: int = 3,
        embedder: str = "msf2pe",
        embed_dim: int = 512,
        grid_size: int = 7,
        depth: int = 8,
        k: int = 9,
        conv: str = "rg",
        gate: str = "scalar",
        dilations: Sequence[int] | None = None,
        ffn_ratio: float = 4.0,
        head_hidden: int | None = None,
        backbone: str = "resnet18",
        weights: Any = None,
        stage_channels: int | Sequence[int] | None = 64,
        knn_backend: str = "auto",
        cosine: bool = False,
        stochastic: bool = False,
        epsilon: float = 0.2,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if embedder not in EMBEDDERS:
            raise ValueError(f"unknown embedder '{embedder}'; expected one of {EMBEDDERS}")
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.in_chans = in_chans
        if embedder == "msf2pe":
            self.embed: nn.Module = MultiScalePatchEmbed(
                ResNetTrunk(backbone, weights), embed_dim, grid_size, stage_channels, in_chans
            )
        else:
            if weights is not None:
                raise ValueError("weights= loads the MSF²PE trunk; the stem embedder has none")
            self.embed = StemPatchEmbed(embed_dim, grid_size, in_chans)
        self.num_nodes = self.embed.num_nodes
        if dilations is None:
            dilations = dilation_schedule(depth, self.num_nodes, k)
        dilations = [int(d) for d in dilations]
        if len(dilations) != depth:
            raise ValueError(f"dilations {dilations} has {len(dilations)} entries, depth={depth}")
        self.dilations = dilations
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            [
                RDGCNBlock(
                    embed_dim, k, d, conv, gate, ffn_ratio, p, knn_backend, cosine,
                    stochastic=stochastic, epsilon=epsilon,
                )
                for d, p in zip(dilations, dpr, strict=True)
            ]
        )
        hidden = head_hidden if head_hidden is not None else embed_dim // 2
        self.head = nn.Sequential(
            nn.Linear(embed_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Dropout(drop_rate),
            nn.Linear(hidden, num_classes),
        )
        self.num_features = embed_dim

    def forward_features(self, x: Tensor) -> Tensor:
        """Node features of the last block, ``[B, N, D]`` (for t-SNE and visualisation)."""
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return x

    def forward_head(self, x: Tensor) -> Tensor:
        """Mean over nodes, then the recognition head: ``[B, N, D]`` → ``[B, num_classes]``."""
        if self.training and x.size(0) == 1:
            raise ValueError(
                "a training batch of 1 image: the recognition head normalises over the "
                "batch (BatchNorm1d, paper §3.1 and §4.3), which needs at least 2 images. Train "
                "with a batch size of 2 or more (the engine drops a last partial batch), or call "
                "model.eval() to predict one image"
            )
        return self.head(x.mean(dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def graphs(self) -> list[Tensor | None]:
        """The ``edge_index`` ``[2, B*N*k]`` each block built in the last forward (node ids
        ``b * N + n``; ``None`` before the first forward)."""
        return [block.last_edge_index for block in self.blocks]


_F2N_DEFAULTS = dict(
    img_size=224, embedder="msf2pe", embed_dim=512, grid_size=7, depth=8, k=9, conv="rg"
)


@register_model
def face2nodes(*, num_classes: int = 7, **kwargs: Any) -> Face2Nodes:
    """Face2Nodes with the paper's defaults (§4.3): MSF²PE, N=49, D=512, L=8, k=9, RG-Conv."""
    return build_model_with_cfg(
        Face2Nodes, "face2nodes", _F2N_DEFAULTS, dict(kwargs, num_classes=num_classes)
    )


@register_model
def face2nodes_mr(*, num_classes: int = 7, **kwargs: Any) -> Face2Nodes:
    """Table 4 baseline: Face2Nodes with MR-Conv (max-relative) instead of RG-Conv."""
    return build_model_with_cfg(
        Face2Nodes, "face2nodes_mr", dict(_F2N_DEFAULTS, conv="mr"),
        dict(kwargs, num_classes=num_classes),
    )


@register_model
def face2nodes_stem(*, num_classes: int = 7, **kwargs: Any) -> Face2Nodes:
    """Table 3 baseline: Face2Nodes with ViG's convolutional stem instead of MSF²PE (N=49)."""
    return build_model_with_cfg(
        Face2Nodes, "face2nodes_stem", dict(_F2N_DEFAULTS, embedder="stem"),
        dict(kwargs, num_classes=num_classes),
    )
