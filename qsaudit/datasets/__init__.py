"""Reading CT segmentation datasets: layouts, cases, images and masks.

``list_cases`` turns a dataset folder into :class:`Case` objects without opening any volume
(DICOM: headers only, see :mod:`qsaudit.datasets.dicom`);
``read_image``/``read_mask``/``read_case`` read them as arrays in canonical RAS orientation;
``ct_main_block`` finds the axial range of the main CT block.
"""

from qsaudit.datasets.cases import LAYOUTS, Case, LabelRef
from qsaudit.datasets.ctblock import ct_main_block
from qsaudit.datasets.label_tables import read_label_table
from qsaudit.datasets.layouts import detect_layout, list_cases
from qsaudit.datasets.volumes import (
    LABEL_STATUSES,
    LabelProblem,
    Volume,
    read_case,
    read_image,
    read_mask,
)

__all__ = [
    "LABEL_STATUSES",
    "LAYOUTS",
    "Case",
    "LabelProblem",
    "LabelRef",
    "Volume",
    "ct_main_block",
    "detect_layout",
    "list_cases",
    "read_case",
    "read_image",
    "read_label_table",
    "read_mask",
]
