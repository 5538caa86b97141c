"""Training the Quality Sentinel model on trusted labels (``qsaudit train``).

The pipeline, one module per stage: ``cases`` (trusted cases, cleaned and cropped to the main CT
block; patient-level split) -> ``candidates`` (degraded labels) and ``snapshots`` (masks from a
small segmentation network at several training steps) -> ``samples`` (slice crops with their
slice Dice as target, rebalanced over the Dice range) -> ``build`` (all of it on several
processes) -> ``trainer`` (the loop: validation, best checkpoint, resume) -> ``run`` (one call
that does everything and writes the model file). Settings live in ``config``.

Importing this package does not import torch; the modules that need it import it themselves.
"""

from qsaudit.training.config import SampleConfig, TrainConfig, train_preset

__all__ = ["SampleConfig", "TrainConfig", "train_preset"]
