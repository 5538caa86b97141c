"""Tests of the structure-name registry: synonyms, vocabularies, pairs, the atlas table."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qsaudit.errors import UsageError
from qsaudit.registry import (
    SOURCES,
    all_structures,
    canonical_key,
    canonical_name,
    contralateral,
    dap_atlas_labels,
    lookup,
    normalize_name,
    preset_labels,
    vocabulary,
)

ATLAS_FILE = Path("/work/shared/reference/DAP_Atlas_label_name.csv")

SYNONYM_SETS = {
    "kidney_left": ["kidney_left", "left kidney", "Kidney-L", "LeftKidney", "kidney left",
                    "Kidney_L", "L kidney", "LT kidney", "kidney.left", "KIDNEY / LEFT",
                    "kidney_left.nii.gz", "lkid"],
    "gallbladder": ["gallbladder", "gall bladder", "Gall_Bladder", "GallBladder", "gall-bladder"],
    "inferior_vena_cava": ["inferior_vena_cava", "postcava", "IVC", "inferior vena cava",
                           "InferiorVenaCava", "post cava"],
    "urinary_bladder": ["urinary_bladder", "bladder", "Urinary Bladder", "UrinaryBladder"],
    "vertebrae_L1": ["vertebrae_L1", "vertebra L1", "L1", "L1 vertebra", "Vertebrae-L1",
                     "vertebraeL1"],
    "rib_left_1": ["rib_left_1", "costa 1 left", "left rib 1", "Rib_L_1", "1st rib left"],
    "adrenal_gland_right": ["adrenal_gland_right", "right adrenal gland", "RightAdrenalGland",
                            "adrenal gland R", "R adrenal gland"],
    "aorta": ["aorta", "Aorta", "arota", " AORTA "],
    "spinal_cord": ["spinal_cord", "SpinalCord", "spinal cord", "Spinal-Cord"],
    "parotid_gland_right": ["RightParotid", "parotid_gland_right", "Parotid_R", "right parotid"],
    "ptv56": ["PTV56", "ptv_56", "PTV 56", "ptv56"],
    "clavicula_left": ["clavicula_left", "clavicle left", "Left Clavicle"],
    "costal_cartilages": ["costal_cartilages", "rib_cartilage", "costal cartilage"],
    "celiac_trunk": ["celiac_trunk", "celiac_truck", "coeliac trunk"],
}


@pytest.mark.parametrize("key", sorted(SYNONYM_SETS))
def test_synonym_sets_resolve_to_one_key(key: str) -> None:
    resolved = {name: canonical_key(name) for name in SYNONYM_SETS[key]}
    assert resolved == {name: key for name in SYNONYM_SETS[key]}


def test_side_words_do_not_swap_sides() -> None:
    assert canonical_key("Kidney_R") == "kidney_right"
    assert canonical_key("RightKidney") == "kidney_right"
    assert canonical_key("rt kidney") == "kidney_right"
    assert canonical_key("costa 12 right") == "rib_right_12"


def test_vertebra_level_is_not_read_as_a_side() -> None:
    assert normalize_name("L1").side is None
    assert lookup("vertebrae_L5").key == "vertebrae_L5"
    assert lookup("T12").key == "vertebrae_T12"


def test_canonical_name_is_human_readable() -> None:
    assert canonical_name("Kidney-L") == "left kidney"
    assert canonical_name("postcava") == "inferior vena cava"
    assert canonical_name("vertebrae_C7") == "vertebra C7"


@pytest.mark.parametrize("name", ["my_tumour", "Lesion-3", "kidney top", "left", "", "L"])
def test_unknown_names_pass_through(name: str) -> None:
    assert lookup(name) is None
    assert canonical_name(f"  {name} ") == name
    assert canonical_key(name) == name


@pytest.mark.parametrize(("source", "size"), [
    ("totalseg_v1", 104), ("totalseg_v2", 117), ("abdomenatlas", 25), ("btcv", 13),
    ("amos", 15), ("dap_atlas", 143), ("openkbp", 10),
])
def test_vocabulary_sizes(source: str, size: int) -> None:
    names = vocabulary(source)
    assert len(names) == size
    assert len(set(names)) == size


@pytest.mark.parametrize("source", SOURCES)
def test_every_vocabulary_name_resolves(source: str) -> None:
    unresolved = [name for name in vocabulary(source) if lookup(name) is None]
    assert unresolved == []
    for name in vocabulary(source):
        assert source in lookup(name).sources


def test_vocabularies_map_to_distinct_structures() -> None:
    # Within one source, two names must not collapse onto one structure.
    for source in SOURCES:
        keys = [lookup(name).key for name in vocabulary(source)]
        assert len(keys) == len(set(keys)), source


def test_totalsegmentator_spellings() -> None:
    v1, v2 = set(vocabulary("totalseg_v1")), set(vocabulary("totalseg_v2"))
    assert {"lung_upper_lobe_left", "vertebrae_L1", "rib_left_1", "face",
            "heart_myocardium"} <= v1
    assert {"urinary_bladder", "vertebrae_S1", "brain", "skull", "spinal_cord", "sternum",
            "costal_cartilages", "kidney_cyst_left"} <= v2
    assert "face" not in v2 and "heart_myocardium" not in v2


def test_preset_labels() -> None:
    btcv, amos = preset_labels("btcv"), preset_labels("amos")
    assert sorted(btcv) == list(range(1, 14))
    assert sorted(amos) == list(range(1, 16))
    assert canonical_key(btcv[2]) == "kidney_right" and canonical_key(btcv[13]) == \
        "adrenal_gland_left"
    assert canonical_key(btcv[10]) == "portal_vein_and_splenic_vein"
    assert canonical_key(amos[9]) == "inferior_vena_cava"
    assert canonical_key(amos[15]) == "prostate_or_uterus"
    assert len(preset_labels("totalseg_v1")) == 104
    with pytest.raises(UsageError, match='"nope"'):
        preset_labels("nope")
    with pytest.raises(UsageError, match='"nope"'):
        vocabulary("nope")


def test_dap_atlas_labels_have_specials_and_structures() -> None:
    labels = dap_atlas_labels()
    assert sorted(labels) == list(range(145))
    assert labels[0] == "Background" and labels[1] == "Left to annotate"
    assert lookup(labels[15]).key == "kidney_left"
    assert all(lookup(labels[i]) is not None for i in range(2, 145))


@pytest.mark.skipif(not ATLAS_FILE.exists(), reason="atlas reference table not available")
def test_dap_atlas_labels_match_reference_file() -> None:
    with ATLAS_FILE.open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    expected = {int(label): name.strip() for label, name in rows}
    assert dap_atlas_labels() == expected


def test_pairs_are_symmetric_and_sided() -> None:
    paired = [s for s in all_structures() if s.pair is not None]
    assert len(paired) > 50
    for structure in paired:
        other = contralateral(structure.key)
        assert other is not None and other.pair == structure.key
        assert {structure.side, other.side} == {"left", "right"}
        assert structure.region == other.region
    assert contralateral("Kidney-L").key == "kidney_right"
    assert contralateral("liver") is None
    assert contralateral("not an organ") is None


def test_structures_are_well_formed() -> None:
    structures = all_structures()
    keys = [s.key for s in structures]
    assert len(keys) == len(set(keys))
    for s in structures:
        assert s.name and s.region and s.sources
        assert set(s.sources) <= set(SOURCES)
        assert lookup(s.key) is s and lookup(s.name) is s
        assert all(lookup(syn) is s for syn in s.synonyms)
        if s.hu_range is not None:
            assert -1024 <= s.hu_range[0] < s.hu_range[1] <= 3000
        assert s.components is None or s.components >= 1
    assert lookup("liver").hu_range == (0.0, 200.0)
    assert lookup("lung_upper_lobe_left").hu_range[1] <= -500


def test_what_a_correct_mask_may_hold() -> None:
    from qsaudit.registry.table import CONTENTS

    for s in all_structures():
        assert s.contents is None or (s.contents in CONTENTS and s.hu_range is not None), s.key
    assert {lookup(k).contents for k in ("colon", "stomach", "small_bowel", "rectum")} == {"lumen"}
    assert {lookup(k).contents for k in ("femur_left", "humerus_right", "rib_left_7",
                                         "vertebrae_L1", "sacrum")} == {"marrow"}
    # no marrow in cartilage; an esophagus taking in the trachea's air stays implausible
    for key in ("liver", "costal_cartilages", "esophagus", "trachea", "aorta"):
        assert lookup(key).contents is None, key


def test_an_unknown_contents_value_is_refused(monkeypatch) -> None:
    from qsaudit.registry import table

    read = table._read_csv
    rows = read("structures.csv")
    rows[0] = {**rows[0], "contents": "soup"}
    monkeypatch.setattr(table, "_read_csv",
                        lambda name: rows if name == "structures.csv" else read(name))
    table.load_registry.cache_clear()
    try:
        with pytest.raises(ValueError, match="unknown contents 'soup'"):
            table.load_registry()
    finally:
        monkeypatch.undo()
        table.load_registry.cache_clear()


def test_import_is_torch_and_pandas_free() -> None:
    code = ("import sys, qsaudit.registry as r; r.lookup('liver'); "
            "print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name, target", [
    ("PTV70", True), ("ptv 56", True), ("PTV60", True), ("CTV_high", True), ("GTVp", True),
    ("ITV", True), ("Parotid_L", False), ("liver", False), ("spinal cord", False),
    ("ptvfoo", False)])
def test_target_volumes_by_registry_region_or_name(name: str, target: bool) -> None:
    from qsaudit.registry import is_target_volume

    assert is_target_volume(name) is target


def test_structure_families_for_accuracy_reports():
    from qsaudit.registry import structure_family

    assert structure_family("rib_left_7") == "bones"
    assert structure_family("Mandible") == "bones"
    assert structure_family("portal_vein_and_splenic_vein") == "vessels"
    assert structure_family("autochthon_left") == "muscles"
    assert structure_family("colon") == "bowel"
    assert structure_family("Esophagus") == "bowel"
    assert structure_family("lung_upper_lobe_left") == "lungs"
    assert structure_family("liver") == "organs"
    assert structure_family("SpinalCord") == "organs"
    assert structure_family("PTV70") == "targets"
    assert structure_family("GTVp") == "targets"
    assert structure_family("my_tumour") == "other"


def test_series_key_groups_numbered_structures_by_their_series() -> None:
    from qsaudit.registry import series_key

    assert series_key("vertebrae_C5") == series_key("L1") == series_key("vertebra T12")
    assert series_key("rib_left_5") == series_key("left rib 12") != series_key("rib_right_5")
    assert series_key("PTV70") == series_key("PTV56")
    for name in ("liver", "sacrum", "kidney_left", "my_tumour_3"):
        assert series_key(name) is None
