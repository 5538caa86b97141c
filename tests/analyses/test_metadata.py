"""Metadata quirks: BOM, separators, column options, sex and age spellings, unmatched ids."""

from __future__ import annotations

import math

import pytest
from analyses_tables import make_results, write_meta

from qsaudit.analyses.metadata import (
    join_metadata,
    normalise_sex,
    parse_age,
    parse_sex_map,
    read_metadata,
)
from qsaudit.analyses.results import normalise_results
from qsaudit.errors import UsageError


@pytest.mark.parametrize("raw, years", [("45", 45.0), ("045Y", 45.0), ("45.5", 45.5),
                                        ("45 years", 45.0), ("45,5", 45.5), ("006M", 0.5),
                                        (63, 63.0), ("52 yrs", 52.0)])
def test_parse_age_spellings(raw, years):
    assert parse_age(raw) == pytest.approx(years)


@pytest.mark.parametrize("raw", ["", "abc", "200", "-3", "45Q", None])
def test_parse_age_unreadable_is_nan(raw):
    assert math.isnan(parse_age(raw))


@pytest.mark.parametrize("raw, sex", [("M", "M"), ("f", "F"), ("Male", "M"), (" female ", "F"),
                                      ("o", None), ("", None), ("1", None)])
def test_normalise_sex(raw, sex):
    assert normalise_sex(raw) == sex


def test_sex_map():
    assert parse_sex_map("0=F,1=M") == {"0": "F", "1": "M"}
    assert normalise_sex("1", parse_sex_map("0=F, 1=male")) == "M"
    with pytest.raises(UsageError, match="expected pairs"):
        parse_sex_map("0:F")
    with pytest.raises(UsageError, match="expected pairs"):
        parse_sex_map("0=X")


def test_totalsegmentator_meta_with_bom_and_semicolons(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_bytes("\ufeffimage_id;age;gender;institute;study_type;split;manufacturer\n"
                     "s0001;45;m;I;ct abdomen;train;siemens\ns0002;71;f;J;ct thorax;val;ge\n"
                     "s0003;;o;I;ct;test;ge\n".encode())
    meta = read_metadata(path)
    t = meta.table.set_index("patient_id")
    assert meta.id_col == "image_id" and meta.sex_col == "gender"
    assert t.loc["s0001", "sex"] == "M" and t.loc["s0002", "sex"] == "F"
    assert t.loc["s0002", "age"] == 71.0 and math.isnan(t.loc["s0003", "age"])
    assert t.loc["s0002", "manufacturer"] == "ge"
    assert meta.unreadable_sex == ["o"]


@pytest.mark.parametrize("sep", [",", "\t", ";"])
def test_separators_and_column_options(tmp_path, sep):
    path = write_meta(tmp_path / "m.txt", [("a", "045Y", "F"), ("b", "50 years", "Male")],
                      sep=sep, header=("Kennung", "PatientAge", "PatientSex"), bom=False)
    with pytest.raises(UsageError, match="no id column"):
        read_metadata(path)
    meta = read_metadata(path, id_col="kennung", sex_col="PatientSex", age_col="PatientAge")
    assert meta.table["sex"].tolist() == ["F", "M"]
    assert meta.table["age"].tolist() == [45.0, 50.0]
    with pytest.raises(UsageError, match='no column "sexx"'):
        read_metadata(path, id_col="Kennung", sex_col="sexx")


def test_zero_one_sex_needs_a_map(tmp_path):
    path = write_meta(tmp_path / "m.csv", [("a", "40", "0"), ("b", "50", "1")], sep=",")
    with pytest.raises(UsageError, match="--sex-map"):
        read_metadata(path)
    meta = read_metadata(path, sex_map={"0": "F", "1": "M"})
    assert meta.table["sex"].tolist() == ["F", "M"]


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(UsageError, match="no such metadata"):
        read_metadata(tmp_path / "none.csv")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(UsageError, match="empty"):
        read_metadata(tmp_path / "e.csv")


def test_join_reports_unmatched_both_ways(tmp_path):
    path = write_meta(tmp_path / "m.csv", [("s0001", "40", "m"), ("s0002", "x", "f"),
                                           ("s0002", "41", "f"), ("s9999", "50", "f"),
                                           ("s0003", "60", "?")])
    meta = read_metadata(path)
    assert meta.duplicate_ids == ["s0002"]
    joined = join_metadata(normalise_results(make_results(4)), meta)
    assert joined.cases_without_metadata == ["s0004"]
    assert joined.metadata_without_cases == ["s9999"]
    assert joined.cases_missing_sex == ["s0003"]
    assert joined.cases_missing_age == ["s0002"]  # first row of a duplicate id is kept
    assert set(joined.table["patient_id"]) == {"s0001", "s0002", "s0003"}
