"""See what a model looks at: Grad-CAM and Grad-CAM++ for every registered model, the k-NN
face graph of the RDGCN blocks drawn on the face (edges coloured by the RG-Conv gate), PyG's
explainers on one block's graph, AGFN's batch graph, and the figures ``pyg-fer explain``
writes for image files.

Written by hand on forward/backward hooks (the PyPI ``grad-cam`` package depends on
``opencv-python``, which clashes with the headless OpenCV wheel pyg-fer uses).
"""

from pyg_fer.explain.batch_graph import batch_graph, draw_batch_graph
from pyg_fer.explain.explainers import (
    BlockExplanation,
    BlockGraphModel,
    draw_edge_mask,
    explain_block_edges,
)
from pyg_fer.explain.files import METHODS, ExplainResult, explain_images, resolve_target
from pyg_fer.explain.gradcam import grad_cam, num_blocks, target_layer
from pyg_fer.explain.graph import (
    BlockGraph,
    block_graphs,
    draw_face_graph,
    draw_neighbourhoods,
    face_graph_edges,
    rg_edge_gates,
)

__all__ = [
    "METHODS",
    "BlockExplanation",
    "BlockGraph",
    "BlockGraphModel",
    "ExplainResult",
    "batch_graph",
    "block_graphs",
    "draw_batch_graph",
    "draw_edge_mask",
    "draw_face_graph",
    "draw_neighbourhoods",
    "explain_block_edges",
    "explain_images",
    "face_graph_edges",
    "grad_cam",
    "num_blocks",
    "resolve_target",
    "rg_edge_gates",
    "target_layer",
]
