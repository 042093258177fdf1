"""Graph builders, graph convolutions, embedders and blocks."""

from pyg_fer.nn.conv import MRConv, RGConv
from pyg_fer.nn.knn import DilatedKNNGraph, dilated_knn_graph

__all__ = ["DilatedKNNGraph", "MRConv", "RGConv", "dilated_knn_graph"]
from pyg_fer.nn.block import FFN, DropPath, RDGCNBlock, dilation_schedule  # noqa: E402
from pyg_fer.nn.embed import MultiScalePatchEmbed, StemPatchEmbed, nodes_to_pyg  # noqa: E402
from pyg_fer.nn.loss import LabelSmoothingCrossEntropy, label_smoothing_cross_entropy  # noqa: E402

__all__ += [
    "DropPath", "FFN", "LabelSmoothingCrossEntropy", "MultiScalePatchEmbed", "RDGCNBlock",
    "StemPatchEmbed", "dilation_schedule", "label_smoothing_cross_entropy", "nodes_to_pyg",
]
