"""Graph builders, graph convolutions, embedders and blocks."""

from pyg_fer.nn.conv import MRConv, RGConv
from pyg_fer.nn.knn import DilatedKNNGraph, dilated_knn_graph

__all__ = ["DilatedKNNGraph", "MRConv", "RGConv", "dilated_knn_graph"]
