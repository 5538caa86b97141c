"""The Quality Sentinel model: configuration, preprocessing, network, losses, text encoders,
model files and the import of the paper's released checkpoint.

Torch-free at import: ``config`` and ``preprocess`` are numpy-only (data workers use them);
``network``, ``losses``, ``text``, ``checkpoint`` and ``paper`` import torch.
"""
