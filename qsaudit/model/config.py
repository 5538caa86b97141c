"""The Quality Sentinel model's configuration: one frozen dataclass, its defaults in one place.

Torch-free (data workers import it). A checkpoint stores ``ModelConfig.to_dict()`` so that the
same network and the same preprocessing are rebuilt at inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from qsaudit.errors import ModelError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Arithmetic of a forward pass: ``auto`` picks per device and model
(``qsaudit.model.checkpoint.resolve_precision``)."""

BACKBONES = ("resnet10", "resnet18", "resnet34", "resnet50")
PREPROCESSING_MODES = ("qsaudit", "paper")
DEFAULT_MARGIN_MM = 70.0
"""Crop margin of new models: 70 mm is what the 20-pixel margin of the first models meant on
the CT they were trained on (OpenKBP at 3.9-5 mm pixels: 78-100 mm; phantoms at 2.6-3 mm:
52-60 mm), now fixed in millimetres so that a 0.7 mm CT shows the network the same view."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and preprocessing of a :class:`~qsaudit.model.network.QualityNet`.

    Attributes:
        backbone: ResNet depth of the 2-channel trunk (``resnet10|18|34|50``).
        width: channels of the first stage (64 = torchvision's ResNet); stages have
            ``width, 2*width, 4*width, 8*width`` channels (x4 for ResNet-50's bottlenecks).
        input_size: side ``S`` in pixels of the square model input (the crop is resized to it).
        hu_window: CT window in HU mapped to [0, 1] before normalisation.
        margin: crop margin in pixels around the mask's bounding box on the slice (inference),
            used when ``margin_mm`` is None (the paper's protocol, and models trained before).
        margin_mm: crop margin in millimetres (None = count it in pixels, ``margin``). With it
            the model's view of a label is the same region of anatomy at any pixel size: the
            crop is the mask's box plus this margin, resized to ``input_size``.
        embed_dim: size ``E`` of the structure-name text embedding (384 MiniLM, 512 CLIP).
        hidden: width of the gated head.
        bounded: sigmoid output in [0, 1]; the paper's head is unbounded (``False``).
        preprocessing: ``"qsaudit"`` (square crop padded with air, both channels centred to
            about [-1, 1]) or ``"paper"`` (the released Quality Sentinel's exact crop and
            normalisation).
    """

    backbone: str = "resnet18"
    width: int = 32
    input_size: int = 96
    hu_window: tuple[float, float] = (-200.0, 200.0)
    margin: int = 20
    margin_mm: float | None = None
    embed_dim: int = 384
    hidden: int = 256
    bounded: bool = True
    preprocessing: str = "qsaudit"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ModelError(f'backbone "{self.backbone}": unknown (choose from '
                             f'{", ".join(BACKBONES)})')
        if self.preprocessing not in PREPROCESSING_MODES:
            raise ModelError(f'preprocessing "{self.preprocessing}": unknown (choose from '
                             f'{", ".join(PREPROCESSING_MODES)})')
        for name in ("width", "input_size", "embed_dim", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"{name} = {getattr(self, name)}: must be a positive integer")
        if self.margin < 0:
            raise ModelError(f"margin = {self.margin}: must be >= 0")
        if self.margin_mm is not None:
            if not float(self.margin_mm) >= 0:
                raise ModelError(f"margin_mm = {self.margin_mm}: must be >= 0")
            object.__setattr__(self, "margin_mm", float(self.margin_mm))
        lo, hi = self.hu_window
        if not hi > lo:
            raise ModelError(f"hu_window = {self.hu_window}: upper end must exceed lower end")
        # JSON round trips turn the window into a list; keep it a tuple of floats.
        object.__setattr__(self, "hu_window", (float(lo), float(hi)))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields (``hu_window`` as a list)."""
        d = asdict(self)
        d["hu_window"] = list(self.hu_window)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys raise :class:`ModelError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(f"model config: unknown field(s) {', '.join(unknown)}")
        kwargs = dict(d)
        if "hu_window" in kwargs:
            kwargs["hu_window"] = tuple(kwargs["hu_window"])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (e.g. ``embed_dim`` to fit a text encoder)."""
        return replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    # Sized for 2 CPU cores: ResNet-18 at half width, 96 px crops, MiniLM embeddings.
    "default": ModelConfig(margin_mm=DEFAULT_MARGIN_MM),
    # The released Quality Sentinel: ResNet-50 at 256 px, CLIP embeddings, hidden 50,
    # unbounded head, its own crop and normalisation. To train this architecture with
    # another encoder or a bounded head, use ``PRESETS["paper"].replace(...)``.
    "paper": ModelConfig(backbone="resnet50", width=64, input_size=256, margin=20,
                         embed_dim=512, hidden=50, bounded=False, preprocessing="paper"),
}


def get_preset(name: str) -> ModelConfig:
    """The preset called ``name``; :class:`ModelError` listing the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ModelError(f'model preset "{name}": unknown (choose from '
                         f'{", ".join(PRESETS)})') from None
