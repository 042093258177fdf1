"""Export trained models for deployment: ONNX (onnxruntime) and ``torch.export`` programs."""

from pyg_fer.export.onnx import export_metadata, read_onnx_metadata, to_onnx, to_torch_export

__all__ = ["export_metadata", "read_onnx_metadata", "to_onnx", "to_torch_export"]
