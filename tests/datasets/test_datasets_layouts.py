"""Listing datasets: layout detection, every layout in .nii and .nii.gz, label tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import pytest

from qsaudit.datasets import LAYOUTS, detect_layout, list_cases, read_label_table
from qsaudit.errors import DatasetError, UsageError

NAMES = ["spleen", "liver", "kidney_left"]


def test_per_structure_lists_cases_in_natural_order(per_structure_dataset: Path, ext: str):
    assert detect_layout(per_structure_dataset) == "per-structure"
    cases = list_cases(per_structure_dataset)
    assert [c.case_id for c in cases] == ["case_1", "case_2", "case_10"]
    case = cases[0]
    assert case.layout == "per-structure"
    assert case.image == per_structure_dataset / "case_1" / f"ct{ext}"
    assert sorted(label.name for label in case.labels) == sorted(NAMES)
    assert all(label.value is None and label.path.is_file() for label in case.labels)


def test_single_case_folder(single_case: Path, ext: str):
    assert detect_layout(single_case) == "single"
    (case,) = list_cases(single_case)
    assert case.case_id == "BDMAP_00000001" and case.layout == "single"
    assert case.image == single_case / f"ct{ext}"
    assert len(case.labels) == 3


def test_nnunet_lists_train_and_test_cases_with_every_label(nnunet_dataset: Path, ext: str):
    assert detect_layout(nnunet_dataset) == "nnunet"
    cases = list_cases(nnunet_dataset)
    assert [c.case_id for c in cases] == ["abd_001", "abd_002", "abd_101"]
    first = cases[0]
    assert first.image == nnunet_dataset / "imagesTr" / f"abd_001_0000{ext}"
    assert [(lab.name, lab.value) for lab in first.labels] == list(zip(NAMES, [1, 2, 3]))
    assert {lab.path for lab in first.labels} == {nnunet_dataset / "labelsTr" / f"abd_001{ext}"}
    assert cases[2].image == nnunet_dataset / "imagesTs" / f"abd_101_0000{ext}"


def test_nnunet_case_without_image_is_listed(nnunet_dataset: Path, ext: str):
    (nnunet_dataset / "imagesTr" / f"abd_002_0000{ext}").unlink()
    case = next(c for c in list_cases(nnunet_dataset) if c.case_id == "abd_002")
    assert case.image is None and len(case.labels) == 3


def test_nnunet_rejects_non_nifti_ending(nnunet_dataset: Path):
    meta = json.loads((nnunet_dataset / "dataset.json").read_text())
    meta["file_ending"] = ".mha"
    (nnunet_dataset / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r'file_ending "\.mha"'):
        list_cases(nnunet_dataset)


def test_msd_uses_training_list_and_int_keyed_labels(msd_dataset: Path, ext: str):
    assert detect_layout(msd_dataset) == "msd"
    cases = list_cases(msd_dataset)
    assert [c.case_id for c in cases] == ["liver_0", "liver_1"]
    assert cases[1].image == msd_dataset / "imagesTr" / f"liver_1{ext}"
    assert [(lab.name, lab.value) for lab in cases[1].labels] == list(zip(NAMES, [1, 2, 3]))


def test_msd_missing_image_gives_none(msd_dataset: Path, ext: str):
    (msd_dataset / "imagesTr" / f"liver_0{ext}").unlink()
    assert list_cases(msd_dataset)[0].image is None


def test_paired_needs_names_then_pairs_by_number(paired_dataset: Path, labels_csv: Path,
                                                 ext: str):
    assert detect_layout(paired_dataset) == "paired"
    with pytest.raises(DatasetError, match="--labels"):
        list_cases(paired_dataset)
    cases = list_cases(paired_dataset, labels_table=labels_csv)
    assert [c.case_id for c in cases] == ["0001", "0002", "0003"]
    assert cases[1].image == paired_dataset / "img" / f"img0002{ext}"
    assert {lab.path for lab in cases[1].labels} == {paired_dataset / "label" / f"label0002{ext}"}
    assert [lab.value for lab in cases[1].labels] == [1, 2, 3]


def test_paired_images_labels_folders_and_adjacent_table(tmp_path: Path, paired_dataset: Path,
                                                         labels_csv: Path):
    root = tmp_path / "renamed"
    shutil.copytree(paired_dataset / "img", root / "images")
    shutil.copytree(paired_dataset / "label", root / "labels")
    shutil.copy(labels_csv, root / "labels.csv")
    cases = list_cases(root)
    assert len(cases) == 3 and cases[0].labels[0].name == "spleen"


def test_paired_label_without_image(paired_dataset: Path, labels_csv: Path, ext: str):
    (paired_dataset / "img" / f"img0003{ext}").unlink()
    case = list_cases(paired_dataset, labels_table=labels_csv)[-1]
    assert case.case_id == "0003" and case.image is None and len(case.labels) == 3


def test_presets_name_label_map_values(paired_dataset: Path):
    registry = pytest.importorskip("qsaudit.registry")
    btcv = list_cases(paired_dataset, preset="btcv")
    assert len(btcv[0].labels) == 13
    assert [lab.value for lab in btcv[0].labels] == list(range(1, 14))
    assert {lab.name for lab in btcv[0].labels} == set(registry.preset_labels("btcv").values())
    assert len(list_cases(paired_dataset, preset="amos")[0].labels) == 15
    with pytest.raises(UsageError):
        list_cases(paired_dataset, preset="nope")


def test_per_structure_label_map_needs_a_table(tmp_path: Path, write_nifti, ct_data, label_map,
                                               labels_csv: Path):
    root = tmp_path / "AbdomenAtlas"
    write_nifti(root / "BDMAP_1" / "ct.nii.gz", ct_data)
    write_nifti(root / "BDMAP_1" / "combined_labels.nii.gz", label_map)
    with pytest.raises(DatasetError, match="combined_labels.nii.gz.*label names"):
        list_cases(root)
    (case,) = list_cases(root, labels_table=labels_csv)
    assert [(lab.name, lab.value) for lab in case.labels] == list(zip(NAMES, [1, 2, 3]))
    assert case.labels[0].path.name == "combined_labels.nii.gz"
    (root / "label_names.json").write_text(json.dumps({"1": "a", "2": "b"}))
    (case,) = list_cases(root)
    assert [lab.name for lab in case.labels] == ["a", "b"]


def test_case_without_ct_is_listed(per_structure_dataset: Path, ext: str):
    (per_structure_dataset / "case_2" / f"ct{ext}").unlink()
    case = next(c for c in list_cases(per_structure_dataset) if c.case_id == "case_2")
    assert case.image is None and len(case.labels) == 3


def test_forced_layout_and_errors(tmp_path: Path, per_structure_dataset: Path):
    assert len(list_cases(per_structure_dataset, layout="per-structure")) == 3
    with pytest.raises(UsageError, match="unknown layout"):
        list_cases(per_structure_dataset, layout="zip")
    with pytest.raises(DatasetError, match="dataset.json"):
        list_cases(per_structure_dataset, layout="nnunet")
    with pytest.raises(DatasetError, match="no such folder"):
        list_cases(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no known dataset layout"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no cases"):
        list_cases(tmp_path / "empty", layout="per-structure")
    with pytest.raises(DatasetError, match="no cases"):
        list_cases(tmp_path / "empty", layout="dicom")
    assert set(LAYOUTS) == {"per-structure", "nnunet", "msd", "paired", "single", "dicom"}


def test_listing_opens_no_volume(per_structure_dataset: Path, nnunet_dataset: Path,
                                 monkeypatch: pytest.MonkeyPatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a volume was opened while listing")

    monkeypatch.setattr(nib, "load", refuse)
    monkeypatch.setattr(nib.Nifti1Image, "from_filename", refuse)
    assert len(list_cases(per_structure_dataset)) == 3
    assert len(list_cases(nnunet_dataset)) == 3


def test_read_label_table_forms(tmp_path: Path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("name,value\nbackground,0\nliver,2\nspleen,1\n")
    assert read_label_table(csv_path) == {1: "spleen", 2: "liver"}
    bare = tmp_path / "bare.csv"
    bare.write_text("1,aorta\n2,IVC\n")
    assert read_label_table(bare) == {1: "aorta", 2: "IVC"}
    by_name = tmp_path / "n.json"
    by_name.write_text(json.dumps({"labels": {"background": 0, "liver": 1}}))
    assert read_label_table(by_name) == {1: "liver"}
    bad = tmp_path / "bad.csv"
    bad.write_text("value,name\nx,liver\n")
    with pytest.raises(DatasetError, match="line 2"):
        read_label_table(bad)
    twice = tmp_path / "twice.csv"
    twice.write_text("value,name\n1,liver\n1,spleen\n")
    with pytest.raises(DatasetError, match="named twice"):
        read_label_table(twice)
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_label_table(broken)
