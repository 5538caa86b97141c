"""AAPM TG-263 structure names, as radiotherapy structure sets write them, resolve."""

from __future__ import annotations

import pytest

from qsaudit.registry import canonical_key, canonical_name, lookup


@pytest.mark.parametrize(("name", "key"), [
    ("Parotid_L", "parotid_gland_left"), ("Parotid_R", "parotid_gland_right"),
    ("SpinalCord", "spinal_cord"), ("Lung_L", "lung_left"), ("Brainstem", "brainstem"),
    ("PTV_70", "ptv70"), ("PTV_7000", "ptv70"), ("PTV_5600", "ptv56"),
    ("Eye_L", "eyeball_left"), ("Bowel_Small", "small_bowel"), ("Bladder", "urinary_bladder"),
    ("Kidney_R", "kidney_right"), ("Femur_L", "femur_left"), ("Esophagus", "esophagus"),
    ("A_Aorta", "aorta"), ("A_Pulmonary", "pulmonary_artery"),
    ("A_Carotid_L", "common_carotid_artery_left"), ("V_Venacava_I", "inferior_vena_cava"),
    ("V_Venacava_S", "superior_vena_cava"), ("V_Brachioceph_R", "brachiocephalic_vein_right"),
    ("A_Iliac_Cm_L", "iliac_artery_left"), ("Glnd_Thyroid", "thyroid_gland"),
    ("Glnd_Adrenal_R", "adrenal_gland_right"), ("Bone_Mandible", "mandible"),
    ("Musc_Iliopsoas_L", "iliopsoas_left"),
])
def test_tg263_names(name, key):
    assert canonical_key(name) == key


def test_unknown_tg263_names_stay_as_written():
    assert lookup("OpticChiasm") is None
    assert canonical_name(" Glnd_Submand_L ") == "Glnd_Submand_L"
