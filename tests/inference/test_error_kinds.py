"""The error-kind vocabulary, the one mapping from candidate sources, and the curator's words."""

import math

import pytest

from qsaudit.degrade import ERRORS
from qsaudit.inference.error_kinds import (
    ERROR_KINDS,
    NONE_DSC,
    advice,
    format_slices,
    kind_of_source,
    parse_slices,
)


def test_the_vocabulary_keeps_the_published_names():
    assert ERROR_KINDS == ("none", "too_small", "too_large", "cut_short", "missing_slices",
                           "leak", "extra_blob", "shifted", "boundary_noise", "wrong_side",
                           "wrong_structure")


def test_every_degradation_training_makes_has_a_kind():
    for error in ERRORS:
        if error != "empty":  # the scan cannot score an empty mask
            assert kind_of_source(error) in ERROR_KINDS
    assert kind_of_source("truncation") == "cut_short"
    assert kind_of_source("slice_drop") == "missing_slices"
    assert kind_of_source("lr_swap") == "wrong_side"
    assert kind_of_source("wrong_structure") == "wrong_structure"
    assert kind_of_source("perfect") == "none" and kind_of_source("none") == "none"
    assert kind_of_source("leak") == "leak"  # a kind names itself


def test_a_harmless_degradation_is_none_and_snapshots_have_no_kind():
    assert kind_of_source("erosion", NONE_DSC + 0.01) == "none"
    assert kind_of_source("erosion", 0.5) == "too_small"
    assert kind_of_source("snapshot-30", 0.6) is None
    assert kind_of_source("snapshot-300", 0.97) == "none"
    assert kind_of_source("erosion", math.nan) == "too_small"


def test_advice_says_what_to_do_and_where():
    assert advice("cut_short", "40-52", inside=30) == \
        "cut short at the top: extend it over slices 40-52"
    assert advice("cut_short", "3-8", inside=30).startswith("cut short at the bottom")
    assert advice("missing_slices", "44", task=True) == "fill in the gap over slice 44"
    assert advice("too_large", None) == "too large: shrink it to the structure's boundary"
    assert advice("none") == "looks right: no change needed"
    for missing in (None, "", math.nan, "not_a_kind"):
        assert advice(missing, "1-2") == ""
    assert all(advice(k, "1-2") for k in ERROR_KINDS)


@pytest.mark.parametrize(("text", "span"), [("40-52", (40, 52)), ("7", (7, 7)),
                                            ("", None), (None, None), ("x-y", None)])
def test_slice_spans_read_back(text, span):
    assert parse_slices(text) == span
    if span is not None:
        assert parse_slices(format_slices(*span)) == span
