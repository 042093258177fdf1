"""``vig_ti_fer``: ViG's isotropic tiny model adapted to FER, built from pyg-fer's own blocks.

This is *not* a port of ViG's Grapher. It is the baseline family of Face2Nodes (§4.2: "we
adapt the isotropic network architecture of ViG to FER as our baseline model") expressed with
the same parts as Face2Nodes, so that the two differ only where the paper says they do:

- embedder: ViG's convolutional stem (:class:`~pyg_fer.nn.embed.StemPatchEmbed`, stride 16,
  learnable position embedding) → 14×14 = 196 nodes at 224×224;
- 12 :class:`~pyg_fer.nn.block.RDGCNBlock` s of width 192 with MR-Conv (max-relative), k = 9,
  dilation ``min(idx // 4 + 1, max_dilation)`` (= ⌈l/4⌉: 1,1,1,1,2,2,2,2,3,3,3,3), the
  neighbours ranked by cosine distance as ViG's code does (it L2-normalises before k-NN);
- FFN with 4·D hidden, mean over nodes, head FC(192→1024) + BN + GELU + FC (ViG's head width).

Differences from ViG-Ti's public code: the graph conv maps D → D (ViG's Grapher widens to 2·D
and projects back in ``fc2``), F_in/F_out are Linear + BatchNorm on ``[B·N, D]`` rather than
1×1 convolutions (the same maths), and no stochastic dilation or drop-path by default.
"""

from __future__ import annotations

from typing import Any

from pyg_fer.models._builder import build_model_with_cfg
from pyg_fer.models._registry import register_model
from pyg_fer.models.face2nodes import Face2Nodes

__all__ = ["vig_ti_fer"]


@register_model
def vig_ti_fer(*, num_classes: int = 7, **kwargs: Any) -> Face2Nodes:
    """ViG-Ti (isotropic) for FER: stem, 196 nodes, MR-Conv, width 192, 12 blocks, k=9."""
    defaults = dict(
        img_size=224, embedder="stem", embed_dim=192, grid_size=14, depth=12, k=9, conv="mr",
        cosine=True, head_hidden=1024,
    )
    return build_model_with_cfg(
        Face2Nodes, "vig_ti_fer", defaults, dict(kwargs, num_classes=num_classes)
    )
