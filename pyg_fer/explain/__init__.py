"""See what a model looks at: Grad-CAM and Grad-CAM++ for every registered model.

Written by hand on forward/backward hooks (the PyPI ``grad-cam`` package depends on
``opencv-python``, which clashes with the headless OpenCV wheel pyg-fer uses).
"""

from pyg_fer.explain.gradcam import grad_cam, target_layer

__all__ = ["grad_cam", "target_layer"]
