"""Training settings: one frozen dataclass with the defaults in one place, and the presets.

``default`` suits a CPU or a short GPU run; ``paper`` reproduces the hyper-parameters of the
Quality Sentinel paper (ResNet-50 at 256 px, Adam lr 1e-3 wd 1e-4, cosine, 30 epochs, batch 128).
The model's own settings (backbone, input size, HU window) live in
:class:`qsaudit.model.ModelConfig`; the preset names match its ``PRESETS``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from qsaudit.errors import UsageError


@dataclass(frozen=True)
class SampleConfig:
    """How training samples (slice crops with a slice-Dice target) are made from trusted labels.

    ``degraded_per_label``: candidates per label from the degradation library (plus the perfect
    label itself when ``include_perfect``). ``snapshot_steps``: training steps after which a
    small U-Net, trained on a group of ``snapshot_group`` cases, is snapshotted; each snapshot's
    prediction is a candidate. ``slices_per_candidate``: training slices drawn per candidate;
    validation candidates are scored on ``eval_slices`` evenly spaced slices like a scan.
    ``bins``/``max_bin_ratio``: slice targets are rebalanced over ``bins`` equal bins of [0, 1]
    so that no bin holds more than ``max_bin_ratio`` times the median bin. ``margin_range``:
    crop margin (pixels of the original slice) drawn per training sample; None = 60-140% of
    the model's inference margin (which then sits in the middle of the training range).
    ``draw``: which random draw of *training* candidates and slices to make (0 = the original
    one); another draw gives fresh training samples for a fine-tune while the patient split and
    the validation samples stay exactly as they were.
    ``wrong_per_label``: candidates per label that are another structure's mask under its name
    (``qsaudit.training.candidates.wrong_structure_candidates``). ``derived``: add the
    structures a real CT defines by itself (``qsaudit.training.derived``) to dataset cases:
    ``derived_sources`` of them (``lungs``, ``vertebrae``, ``trachea``, ``clavicles``,
    ``humeri``, ``ribs``).
    ``resample_fraction``: share of training cases shown at another in-plane pixel size
    (``qsaudit.training.resample``).
    ``phantom_region``: ``"abdomen"`` (the demo's phantoms) or ``"trunk"`` (chest to pelvis,
    the whole TotalSegmentator skeleton and fine pixels).
    """

    degraded_per_label: int = 4
    include_perfect: bool = True
    snapshot_steps: tuple[int, ...] = (5, 30, 100, 300)
    snapshot_size: int = 64
    snapshot_group: int = 6
    slices_per_candidate: int = 8
    eval_slices: int = 10
    bins: int = 10
    max_bin_ratio: float = 2.0
    margin_range: tuple[int, int] | None = None
    min_inside_fraction: float = 0.5
    min_label_voxels: int = 20
    phantom_shape: tuple[int, int, int] | None = None
    draw: int = 0
    wrong_per_label: int = 1
    derived: bool = True
    derived_sources: tuple[str, ...] = ("lungs",)
    resample_fraction: float = 0.3
    phantom_region: str = "abdomen"

    @classmethod
    def of_model(cls, meta: dict[str, Any], *, derived: str | None = None,
                 **changes: Any) -> SampleConfig:
        """The sample settings a model file was trained with (its ``meta``; the defaults for
        a model that records none), with ``changes`` and, given ``derived`` (a ``--derived``
        value, :func:`qsaudit.training.derived.derived_overrides`), other structures read off
        the real CT: what a calibration or a benchmark builds its labels with. Raises
        UsageError for an unknown derived source."""
        stored = (meta.get("train_config") or {}).get("samples") or {}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()
              if k in cls.__dataclass_fields__}
        if derived is not None:
            from qsaudit.training.derived import derived_overrides

            kw.update(derived_overrides(derived))
        return replace(cls(**kw), **changes)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of ``qsaudit train``.

    ``max_minutes``: stop training gracefully once the whole run (building samples included)
    has taken this wall time (None = no limit) and keep the best checkpoint.
    ``holdout_fraction``: fraction of patients held out for validation.
    ``workers``: processes that build samples (0 = all cores). ``validate_every``: epochs
    between validations (the last epoch is always validated). ``augment``: random CT
    intensity scale/offset/noise and small shifts/zooms of each training batch (no flips).
    ``precision``: arithmetic of the forward passes (``auto``: bf16 on CUDA, fp16 with loss
    scaling on GPUs without bf16, bf16 with channels-last on CPUs with native bf16 (about 1.9x
    faster than fp32 on AVX512-BF16), fp32 otherwise); weights and optimizer stay fp32.
    ``calibration_windows``: field-of-view copies of every validation case (cut in z to a drawn
    window, ``qsaudit.training.cases.window_copies``) that the label calibration sees beside the
    validation labels, so that labels cut by a scan's edge are not read as labels cut short;
    they are not part of the validation that picks the best epoch.
    """

    preset: str = "default"
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    mse: bool = True
    opr: bool = True
    opr_weight: float = 1.0
    holdout_fraction: float = 0.15
    seed: int = 0
    max_minutes: float | None = None
    workers: int = 0
    device: str = "auto"
    validate_every: int = 1
    augment: bool = True
    precision: str = "auto"
    calibration_windows: int = 1
    samples: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        return asdict(self)

    def with_overrides(self, **changes: Any) -> TrainConfig:
        """A copy with the non-None ``changes`` applied (CLI flags override presets)."""
        kept = {k: v for k, v in changes.items() if v is not None}
        sample_keys = {k for k in kept if k in SampleConfig.__dataclass_fields__}
        samples = replace(self.samples, **{k: kept.pop(k) for k in sample_keys})
        cfg = replace(self, samples=samples, **kept)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`UsageError` for values that cannot work."""
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise UsageError(f"--batch-size must be at least 2, got {self.batch_size}")
        if not self.lr > 0:
            raise UsageError(f"--lr must be positive, got {self.lr}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise UsageError(f"--holdout-fraction must be in [0, 1), got {self.holdout_fraction}")
        if self.optimizer not in ("adam", "adamw"):
            raise UsageError(f"optimizer must be adam or adamw, got {self.optimizer!r}")
        if not (self.mse or self.opr):
            raise UsageError("--no-mse and --no-opr together leave no loss to train with")
        from qsaudit.model.config import PRECISIONS

        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision {self.precision!r}: choose from "
                             f"{', '.join(PRECISIONS)}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise UsageError(f"--max-minutes must be positive, got {self.max_minutes}")
        if self.samples.draw < 0:
            raise UsageError(f"--sample-draw must be 0 or more, got {self.samples.draw}")
        if self.calibration_windows < 0:
            raise UsageError(f"--calibration-windows must be 0 or more, got "
                             f"{self.calibration_windows}")


TRAIN_PRESETS: dict[str, TrainConfig] = {
    "default": TrainConfig(),
    "paper": TrainConfig(preset="paper", epochs=30, batch_size=128, lr=1e-3, weight_decay=1e-4,
                         optimizer="adam"),
}


def train_preset(name: str) -> TrainConfig:
    """The training preset ``name`` (``default`` or ``paper``)."""
    try:
        return TRAIN_PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r} (choose {', '.join(TRAIN_PRESETS)})") from None
