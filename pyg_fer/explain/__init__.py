"""See what a model looks at: Grad-CAM and Grad-CAM++ for every registered model, and the
k-NN face graph of an RDGCN block drawn on the face.

Written by hand on forward/backward hooks (the PyPI ``grad-cam`` package depends on
``opencv-python``, which clashes with the headless OpenCV wheel pyg-fer uses).
"""

from pyg_fer.explain.gradcam import grad_cam, target_layer
from pyg_fer.explain.graph import draw_face_graph, face_graph_edges

__all__ = ["grad_cam", "target_layer", "face_graph_edges", "draw_face_graph"]
