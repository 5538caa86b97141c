"""qsaudit: audit the label quality of CT segmentation datasets.

qsaudit predicts, for every organ mask of every CT volume, the Dice score (DSC) the mask would
have against an expert label, without that expert label (the Quality Sentinel method of Chen,
Zhou and Yuille, 2024). Scores are in [0, 1]; lower means the label is less likely correct.

This module stays import-light: nothing here imports torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
