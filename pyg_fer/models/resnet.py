"""ResNet-18 for FER: the CNN baseline (``resnet18_fer``)."""

from __future__ import annotations

from typing import Any

import torch.nn as nn
from torch import Tensor

from pyg_fer.models._builder import build_model_with_cfg
from pyg_fer.models._registry import register_model
from pyg_fer.models.backbone import ResNetTrunk

__all__ = ["ResNetFER", "resnet18_fer"]


class ResNetFER(nn.Module):
    """A torchvision ResNet trunk with a new linear classifier, the CNN baseline.

    Args:
        num_classes (int): number of expression classes. (default: :obj:`7`)
        img_size (int): training/evaluation image size, recorded in ``cfg``; the network itself
            accepts any size. (default: :obj:`224`)
        in_chans (int): image channels (3). (default: :obj:`3`)
        backbone (str): torchvision ResNet name. (default: :obj:`"resnet18"`)
        weights: trunk weights: ``None``, a torchvision weights enum or a local checkpoint path
            (see :class:`pyg_fer.models.ResNetTrunk`). (default: :obj:`None`)
        drop_rate (float): dropout before the classifier. (default: :obj:`0.0`)
    """

    def __init__(
        self,
        num_classes: int = 7,
        img_size: int = 224,
        in_chans: int = 3,
        backbone: str = "resnet18",
        weights: Any = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if in_chans != 3:
            raise ValueError(f"ResNetFER takes 3-channel images, got in_chans={in_chans}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.trunk = ResNetTrunk(backbone, weights)
        self.num_features = self.trunk.stage_channels[-1]
        self.feature_info = [
            dict(info, module=f"trunk.{info['module']}") for info in self.trunk.feature_info
        ]
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """Last-stage feature map ``[B, C, H/32, W/32]``."""
        return self.trunk(x)[-1]

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(self.drop(x.mean(dim=(2, 3))))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def resnet18_fer(*, num_classes: int = 7, **kwargs: Any) -> ResNetFER:
    """ResNet-18 (torchvision) with a ``num_classes`` linear head: the CNN baseline."""
    return build_model_with_cfg(
        ResNetFER, "resnet18_fer", dict(backbone="resnet18"), dict(kwargs, num_classes=num_classes)
    )
