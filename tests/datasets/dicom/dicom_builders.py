"""Write DICOM on the fly for tests: CT series (pydicom), RT Structure Sets (pydicom) and
DICOM-SEG (highdicom), from arrays in the series' file order (column i, row j, slice k)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    RTStructureSetStorage,
    generate_uid,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass
class Grid:
    """A CT grid: ``shape`` (columns, rows, slices), spacing (column, row, slice) in mm,
    LPS origin of the first slice's first pixel, ImageOrientationPatient, an optional shear
    of the slice positions (mm per slice along the column direction: a gantry tilt) and
    optional extra offsets (mm along the normal) of single slices."""

    shape: tuple[int, int, int] = (24, 20, 12)
    spacing: tuple[float, float, float] = (1.5, 1.5, 2.5)
    origin: tuple[float, float, float] = (-18.0, -15.0, -10.0)
    orientation: tuple[float, ...] = AXIAL
    shear: float = 0.0
    jitter: dict[int, float] = field(default_factory=dict)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])

    def position(self, k: float) -> np.ndarray:
        col_dir = np.array(self.orientation[3:])
        along = k * self.spacing[2] + self.jitter.get(int(k), 0.0)
        return np.array(self.origin) + along * self.normal + k * self.shear * col_dir

    def to_patient(self, i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
        """(N,) voxel coordinates -> (N, 3) LPS mm."""
        row_dir, col_dir = np.array(self.orientation[:3]), np.array(self.orientation[3:])
        origin = np.array([self.position(kk) for kk in np.atleast_1d(k)])
        return (origin + np.outer(i, row_dir) * self.spacing[0]
                + np.outer(j, col_dir) * self.spacing[1])


@dataclass
class Study:
    patient_id: str = "PAT1"
    study_uid: str = field(default_factory=generate_uid)
    frame_uid: str = field(default_factory=generate_uid)
    date: str = "20240102"


def sagittal(ct: np.ndarray, grid: Grid) -> tuple[np.ndarray, Grid]:
    """The same voxels as an axial ``ct`` on ``grid``, as a sagittal series (rows run down)."""
    columns, rows, depth = ct.shape
    origin = grid.to_patient(np.array([columns - 1]), np.array([0]), np.array([depth - 1]))[0]
    return (np.ascontiguousarray(ct[::-1, :, ::-1].transpose(1, 2, 0)),
            Grid(shape=(rows, depth, columns), spacing=(grid.spacing[1], grid.spacing[2],
                                                        grid.spacing[0]),
                 origin=tuple(origin), orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0)))


def phantom(grid: Grid, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A seeded CT (HU, file order) with a body, a 'liver' block and a 'kidney_left' ball."""
    rng = np.random.default_rng(seed)
    columns, rows, depth = grid.shape
    ct = np.full(grid.shape, -1000.0) + rng.normal(0, 5, grid.shape)
    i, j, k = np.meshgrid(np.arange(columns), np.arange(rows), np.arange(depth), indexing="ij")
    body = ((i - columns / 2) / (columns * 0.45)) ** 2 + ((j - rows / 2) / (rows * 0.45)) ** 2 < 1
    ct[body] = 40 + rng.normal(0, 10, int(body.sum()))
    liver = (i >= 3) & (i < 11) & (j >= 4) & (j < 12) & (k >= 2) & (k < 9)
    ball = (i - 16) ** 2 + (j - 10) ** 2 + ((k - 6) * 1.5) ** 2 < 12
    ct[liver] = 60 + rng.normal(0, 5, int(liver.sum()))
    ct[ball] = 150 + rng.normal(0, 5, int(ball.sum()))
    return np.rint(ct).astype(np.int16), {"Liver": liver, "Kidney_L": ball}


def write_ct(folder: Path, ct: np.ndarray, grid: Grid, study: Study, *, series_uid: str | None
             = None, series_number: int = 1, names: Sequence[str] | None = None,
             syntax: str = ExplicitVRLittleEndian, skip: Sequence[int] = (),
             signed: bool = False) -> list[Dataset]:
    """One file per slice (``names[k]`` or ``IM<k>``, no extension); returns the datasets.
    ``signed``: stored as signed HU (PixelRepresentation 1, no intercept), else unsigned + 1024."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    datasets = []
    for k in range(ct.shape[2]):
        ds = _base(CTImageStorage, study, "CT", series_uid, series_number)
        ds.FrameOfReferenceUID = study.frame_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(v) for v in grid.position(k)]
        ds.ImageOrientationPatient = list(grid.orientation)
        ds.PixelSpacing = [grid.spacing[1], grid.spacing[0]]
        ds.SliceThickness = grid.spacing[2]
        ds.Rows, ds.Columns = ct.shape[1], ct.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0 if signed else -1024, 1, "HU"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        stored = ct[:, :, k].T.astype(np.int16) if signed else (ct[:, :, k].T + 1024).astype(
            np.uint16)
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        if syntax != ExplicitVRLittleEndian:
            ds.compress(syntax)
        datasets.append(ds)
        if k not in skip:
            name = names[k] if names is not None else f"IM{k:03d}"
            ds.save_as(folder / name, enforce_file_format=True)
    return datasets


def mask_contours(mask: np.ndarray, grid: Grid) -> list[np.ndarray]:
    """Closed contours (N, 3) LPS mm around ``mask`` (file order), at the 0.5 level per slice."""
    import contourpy

    out = []
    for k in range(mask.shape[2]):
        plane = np.pad(mask[:, :, k].T.astype(np.float64), 1)  # (rows, columns), closed loops
        if not plane.any():
            continue
        generator = contourpy.contour_generator(z=plane, line_type="Separate")
        for line in generator.lines(0.5):
            i, j = line[:-1, 0] - 1, line[:-1, 1] - 1
            out.append(grid.to_patient(i, j, np.full(len(i), k)))
    return out


def write_rtstruct(path: Path, series: Sequence[Dataset], rois: dict[str, list[np.ndarray]],
                   study: Study, *, reference_series: str | None = None,
                   reference_instances: bool = True) -> Dataset:
    """A structure set with one ROI per entry of ``rois`` (name -> contours in LPS mm)."""
    ds = _base(RTStructureSetStorage, study, "RTSTRUCT", generate_uid(), 99)
    ds.StructureSetLabel = "AutoContours"
    ds.StructureSetDate, ds.StructureSetTime = study.date, "120000"
    frame = Dataset()
    frame.FrameOfReferenceUID = study.frame_uid
    ref_study = Dataset()
    ref_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref_study.ReferencedSOPInstanceUID = study.study_uid
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = reference_series or series[0].SeriesInstanceUID
    if reference_instances:
        images = []
        for image in series:
            item = Dataset()
            item.ReferencedSOPClassUID = image.SOPClassUID
            item.ReferencedSOPInstanceUID = image.SOPInstanceUID
            images.append(item)
        ref_series.ContourImageSequence = images
    ref_study.RTReferencedSeriesSequence = [ref_series]
    frame.RTReferencedStudySequence = [ref_study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = [], [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, study.frame_uid
        roi.ROIName, roi.ROIGenerationAlgorithm = name, "AUTOMATIC"
        ds.StructureSetROISequence.append(roi)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = [255, 0, 0]
        roi_contour.ContourSequence = []
        for points in contours:
            contour = Dataset()
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [f"{v:.4f}" for v in np.asarray(points).ravel()]
            roi_contour.ContourSequence.append(contour)
        ds.ROIContourSequence.append(roi_contour)
        observation = Dataset()
        observation.ObservationNumber = observation.ReferencedROINumber = number
        observation.RTROIInterpretedType, observation.ROIInterpreter = "ORGAN", ""
        ds.RTROIObservationsSequence.append(observation)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return ds


def write_seg(path: Path, series: Sequence[Dataset], masks: dict[str, np.ndarray], *,
              fractional: bool = False, codes: dict[str, tuple[str, str, str | None]]
              | None = None) -> Dataset:
    """A DICOM-SEG with one segment per mask (file order). ``codes``: name -> (SNOMED code,
    meaning, side modifier "Left"/"Right" or None) for the segmented property type."""
    import highdicom as hd
    from pydicom.sr.codedict import codes as sr_codes
    from pydicom.sr.coding import Code

    descriptions, arrays = [], []
    for number, (name, mask) in enumerate(masks.items(), start=1):
        code, meaning, _side = (codes or {}).get(name, ("T-D0050", "Tissue", None))
        scheme = "SCT" if code[0].isdigit() else "SRT"
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name,
            segmented_property_category=sr_codes.SCT.Organ,
            segmented_property_type=Code(code, scheme, meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
        arrays.append(np.transpose(mask, (2, 1, 0)))  # (slices, rows, columns)
    pixels = np.stack(arrays, axis=-1)
    if fractional:
        pixels = pixels.astype(np.float32)
    else:
        pixels = pixels.astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=list(series), pixel_array=pixels,
        segmentation_type="FRACTIONAL" if fractional else "BINARY",
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=50,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="qsaudit tests",
        manufacturer_model_name="builder", software_versions="1", device_serial_number="1")
    for number, name in enumerate(masks, start=1):
        side = (codes or {}).get(name, (None, None, None))[2]
        if side:
            modifier = hd.sr.CodedConcept(
                {"Left": "7771000", "Right": "24028007"}[side], "SCT", side)
            seg.SegmentSequence[number - 1].SegmentedPropertyTypeCodeSequence[0] \
                .SegmentedPropertyTypeModifierCodeSequence = [modifier]
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return seg


def _base(sop_class: str, study: Study, modality: str, series_uid: str,
          series_number: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = modality
    ds.PatientID, ds.PatientName = study.patient_id, "Test^Phantom"
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study.study_uid, study.date, "120000"
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, series_number
    ds.Manufacturer = "qsaudit tests"
    ds.ContentDate = datetime.date(2024, 1, 2).strftime("%Y%m%d")
    return ds
