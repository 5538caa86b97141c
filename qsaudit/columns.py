"""The one source of truth for the columns of qsaudit's tables.

``RESULT_COLUMNS`` describes the scan results (one row per case and label), ``SLICE_COLUMNS`` the
per-slice predictions and ``TRUTH_COLUMNS`` the ``truth.csv`` written by ``qsaudit demo``. CSV,
Parquet, the HTML report, the README and the Python API all take names and meanings from here.

Scores: ``predicted_dsc`` is in [0, 1]; lower = the label is less likely correct.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """A column of a qsaudit table: its name, pandas dtype and meaning (stated once)."""

    name: str
    dtype: str
    meaning: str


RESULT_COLUMNS: tuple[Column, ...] = (
    Column("case_id", "string", "Case identifier, as named in the dataset."),
    Column("label", "string", "Label name as written in the dataset (file name or label table)."),
    Column("structure", "string", "Canonical structure name from qsaudit's registry "
           "(unknown names are kept as given)."),
    Column("predicted_dsc", "float64", "Predicted Dice of the mask against an expert label, in "
           "[0, 1]; lower = worse label. Empty when status is not ok."),
    Column("dsc_low", "float64", "Lower end of a 90% prediction interval for the true Dice, sized "
           "by the model's cross-validated errors on held-out real-CT labels of the same "
           "predicted value (models without them: from the spread of the slice predictions)."),
    Column("dsc_high", "float64", "Upper end of that interval."),
    Column("novelty", "string", "Why this label is unlike what the model learnt from, when it is: "
           "'name' (a structure name far from those of the real-CT labels its intervals were measured on), 'image' (mask, CT "
           "or score pattern outside the range of its calibration labels) or 'name+image'; its "
           "interval is then widened (each half-width the larger of twice its own and the widest the "
           "calibration bands reach). Empty otherwise."),
    Column("name_similarity", "float64", "Cosine similarity of the structure name's text "
           "embedding to the nearest name the model was trained on (1 = a trained name)."),
    Column("likely_error", "string", "What is most likely wrong with the label, when the model "
           "has an error classifier: none, too_small, too_large, cut_short, missing_slices, "
           "leak, extra_blob, shifted, boundary_noise, wrong_side or wrong_structure "
           "(qsaudit.inference.error_kinds). Empty for models without one and when status is "
           "not ok."),
    Column("likely_error_p", "float64", "The classifier's probability of likely_error, in [0, 1]."),
    Column("error_slices", "string", "Where along z that error lies: axial slice indices (RAS z, "
           "as worst_slice) 'first-last' or one index; for cut_short the slices just beyond the "
           "end where the structure goes on. Empty for none and without a classifier."),
    Column("raw_score", "float64", "The model's unclipped mean slice output (equals predicted_dsc "
           "for bounded models; the paper's model is unbounded)."),
    Column("slice_std", "float64", "Standard deviation of the slice predictions (disagreement "
           "along the organ)."),
    Column("worst_slice", "Int64", "Slice index (RAS z, canonical orientation) with the lowest "
           "predicted slice Dice."),
    Column("n_slices", "Int64", "Number of slices the model scored."),
    Column("mask_slices", "Int64", "Number of axial slices that contain the mask."),
    Column("voxels", "Int64", "Number of mask voxels."),
    Column("volume_ml", "float64", "Mask volume in millilitres."),
    Column("mean_hu", "float64", "Mean CT value inside the mask (HU)."),
    Column("flag_empty", "boolean", "The mask has no voxel."),
    Column("flag_edge", "boolean", "The mask touches the edge of the field of view."),
    Column("flag_components", "boolean", "Number of connected components is unusual for the "
           "structure."),
    Column("flag_volume", "boolean", "Volume is far from the dataset's own distribution for the "
           "structure (robust z-score, normalised by body size)."),
    Column("flag_side", "boolean", "A left/right structure lies on the wrong side of the body, or "
           "the pair looks swapped."),
    Column("flag_hu", "boolean", "Most mask voxels have implausible HU for the structure (e.g. "
           "an esophagus half air)."),
    Column("n_flags", "Int64", "Number of model-free flags raised."),
    Column("status", "string", "'ok', or the problem that stopped the prediction: unreadable, "
           "missing_image, missing_label, shape_mismatch, affine_mismatch, outside_image (a "
           "DICOM contour or segment entirely outside its CT), empty, or error (an unexpected "
           "failure, text in the error column)."),
    Column("error", "string", "Human-readable detail of the problem, empty when ok."),
    Column("image_path", "string", "CT file the label was scored against (DICOM: the folder of "
           "its series)."),
    Column("label_path", "string", "Label file (per-structure mask, label map, RTSTRUCT or SEG)."),
    Column("label_value", "Int64", "Integer value of the label inside a label map; DICOM: ROI "
           "Number or Segment Number (empty for per-structure files)."),
    Column("study_uid", "string", "DICOM Study Instance UID of the CT (empty for NIfTI)."),
    Column("series_uid", "string", "DICOM Series Instance UID of the CT (empty for NIfTI)."),
    Column("label_sop_uid", "string", "DICOM SOP Instance UID of the RTSTRUCT or SEG holding the "
           "label (empty for NIfTI)."),
)

SLICE_COLUMNS: tuple[Column, ...] = (
    Column("case_id", "string", "Case identifier."),
    Column("label", "string", "Label name as written in the dataset."),
    Column("slice_index", "Int64", "Axial slice index (z in canonical RAS orientation)."),
    Column("slice_dsc", "float64", "Predicted Dice of the mask on this slice, in [0, 1]."),
    Column("mask_voxels", "Int64", "Mask voxels on this slice."),
)

TRUTH_COLUMNS: tuple[Column, ...] = (
    Column("case_id", "string", "Case identifier."),
    Column("label", "string", "Label name as written in the dataset."),
    Column("true_dsc", "float64", "Dice of the label against the reference mask, in [0, 1]."),
    Column("error", "string", "Degradation applied ('none' for a perfect label)."),
    Column("severity", "float64", "Severity knob of the degradation, in [0, 1]."),
    Column("reference_path", "string", "The reference mask file (relative to the truth table's "
           "folder, or absolute); optional. The report outlines it on the worst labels."),
)

FLAG_COLUMNS: tuple[str, ...] = tuple(c.name for c in RESULT_COLUMNS if c.name.startswith("flag_"))


def names(columns: tuple[Column, ...]) -> list[str]:
    """The column names of a table, in order."""
    return [c.name for c in columns]


def meanings(columns: tuple[Column, ...]) -> dict[str, str]:
    """Name → meaning, for reports and documentation."""
    return {c.name: c.meaning for c in columns}
