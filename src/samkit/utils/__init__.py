"""Meta-compatible import paths: ``samkit.utils.transforms.ResizeLongestSide`` and
``samkit.utils.onnx.SamOnnxModel`` stand where ``segment_anything.utils.transforms`` and
``segment_anything.utils.onnx`` are, so code written for Meta's package changes only its
imports."""
