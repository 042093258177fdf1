"""Graph convolutions: one operator per file."""

from pyg_fer.nn.conv.mr_conv import MRConv
from pyg_fer.nn.conv.rg_conv import RGConv

__all__ = ["MRConv", "RGConv"]
