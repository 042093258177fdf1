"""The ResNet trunk shared by every pyg-fer model: construction, weights, feature extraction.

:class:`ResNetTrunk` is a torchvision ResNet without its pooling and classifier. Its forward
returns the four stage outputs (finest first) and ``feature_info`` describes them, as timm's
``features_only`` models do; ``forward_stem`` and ``stages`` give the same maps one stage at a
time. A model takes what it needs: the CNN baseline and AGFN the
last map, Face2Nodes' MSF²PE all four (:class:`~pyg_fer.nn.embed.MultiScalePatchEmbed` takes a
trunk). The state-dict keys are torchvision's (``conv1.weight``, ``layer1.0.conv1.weight``...),
the layout of the pre-trained files FER repositories share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torchvision
from torch import Tensor, nn

from pyg_fer.models.weights import load_backbone_weights
from pyg_fer.nn.embed import check_images

__all__ = ["RESNET_STAGE_CHANNELS", "ResNetTrunk"]

#: Output channels of the four stages of each supported torchvision ResNet.
RESNET_STAGE_CHANNELS: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
}

WeightsArg = str | Path | Any | None


class ResNetTrunk(nn.Module):
    r"""A torchvision ResNet's stem and four stages; ``forward`` returns the four stage maps.

    Args:
        name (str): torchvision ResNet name, one of ``resnet18``, ``resnet34``, ``resnet50``.
            (default: ``"resnet18"``)
        weights: ``None`` (random initialisation), a torchvision weights enum such as
            ``ResNet18_Weights.IMAGENET1K_V1`` (downloaded by torchvision where there is
            internet), or a path to a local checkpoint (e.g. the MS-Celeb-1M ResNet-18 shared by
            FER repositories), loaded by :func:`pyg_fer.models.load_backbone_weights`.
            (default: :obj:`None`)

    Shapes:
        - **input:** images :math:`(B, 3, H, W)`
        - **output:** four maps :math:`(B, C_s, H / r_s, W / r_s)` with :math:`C_s` =
          ``stage_channels[s]`` and :math:`r_s = 4 \cdot 2^s`
    """

    def __init__(self, name: str = "resnet18", weights: WeightsArg = None) -> None:
        super().__init__()
        if name not in RESNET_STAGE_CHANNELS:
            raise ValueError(
                f"unknown backbone '{name}'; choose one of {sorted(RESNET_STAGE_CHANNELS)}"
            )
        local_file = isinstance(weights, (str, Path))
        resnet = getattr(torchvision.models, name)(weights=None if local_file else weights)
        self.name = name
        self.conv1, self.bn1, self.relu, self.maxpool = (
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        )
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        )
        self.stage_channels = RESNET_STAGE_CHANNELS[name]
        self.feature_info: list[dict[str, Any]] = [
            dict(num_chs=channels, reduction=4 * 2**i, module=f"layer{i + 1}")
            for i, channels in enumerate(self.stage_channels)
        ]
        if local_file:
            load_backbone_weights(self, weights)

    @property
    def stages(self) -> tuple[nn.Module, ...]:
        """The four residual stages, applied one after the other to :meth:`forward_stem`."""
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def forward_stem(self, x: Tensor) -> Tensor:
        """Convolution, BatchNorm, ReLU, max-pooling: ``[B, 3, H, W]`` → ``[B, C, H/4, W/4]``."""
        check_images(x, 3)
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.forward_stem(x)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps
