"""Graph builders, graph convolutions, embedders, blocks and batch-level graph layers."""

from pyg_fer.nn.conv import MRConv, RGConv
from pyg_fer.nn.knn import (
    DilatedKNNGraph, dilated_knn, dilated_knn_graph, neighbours_to_edge_index,
)
from pyg_fer.nn.poisson import PoissonGraph, PoissonGraphOutput
from pyg_fer.nn.agfn import AGFN, CosineThresholdGCN
from pyg_fer.nn.block import FFN, DropPath, RDGCNBlock, dilation_schedule
from pyg_fer.nn.embed import MultiScalePatchEmbed, StemPatchEmbed, nodes_to_pyg
from pyg_fer.nn.loss import label_smoothing_cross_entropy

__all__ = [
    "AGFN", "CosineThresholdGCN", "DilatedKNNGraph", "DropPath", "FFN",
    "MRConv",
    "MultiScalePatchEmbed", "PoissonGraph", "PoissonGraphOutput", "RDGCNBlock", "RGConv",
    "StemPatchEmbed", "dilated_knn", "dilated_knn_graph", "dilation_schedule",
    "label_smoothing_cross_entropy", "neighbours_to_edge_index", "nodes_to_pyg",
]
