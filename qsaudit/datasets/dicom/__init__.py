"""The ``dicom`` layout: CT series with RT Structure Sets and DICOM-SEG, as they leave the clinic.

Indexing reads headers only (:mod:`.index`); :func:`list_dicom_cases` makes one case per CT
series (:mod:`.listing`); the reader processes decode a case with :func:`read_dicom_image` and
:func:`read_dicom_mask` (:mod:`.reading`): series pixels (:mod:`.series`), contours rasterised
by the even-odd rule (:mod:`.rtstruct`) and SEG segments placed on the CT grid (:mod:`.seg`).
pydicom and highdicom are imported only when a file is parsed.
"""

from qsaudit.datasets.dicom.listing import DicomCase, DicomLabel, list_dicom_cases
from qsaudit.datasets.dicom.reading import DicomVolume, read_dicom_image, read_dicom_mask

__all__ = [
    "DicomCase",
    "DicomLabel",
    "DicomVolume",
    "list_dicom_cases",
    "read_dicom_image",
    "read_dicom_mask",
]
