"""The one source of truth for structure names, synonyms and label ids (torch- and pandas-free).

Maps the names used by TotalSegmentator v1 (104 classes) and v2 (117), AbdomenAtlas 1.0/1.1,
BTCV (13), AMOS (15), the paper's training atlas (DAP Atlas, 143 structures) and OpenKBP to one
canonical structure each::

    >>> from qsaudit.registry import canonical_name, canonical_key
    >>> canonical_name("Kidney-L"), canonical_key("LeftKidney")
    ('left kidney', 'kidney_left')
    >>> canonical_name("my_tumour")   # unknown names pass through unchanged
    'my_tumour'
"""

from qsaudit.registry.lookup import (
    LABEL_PRESETS,
    all_structures,
    canonical_key,
    canonical_name,
    contralateral,
    dap_atlas_labels,
    is_target_volume,
    lookup,
    preset_labels,
    series_key,
    structure_family,
    vocabulary,
)
from qsaudit.registry.normalize import NameForm, normalize_name
from qsaudit.registry.table import SOURCES, Structure

__all__ = [
    "LABEL_PRESETS",
    "SOURCES",
    "NameForm",
    "Structure",
    "all_structures",
    "canonical_key",
    "canonical_name",
    "contralateral",
    "dap_atlas_labels",
    "is_target_volume",
    "lookup",
    "normalize_name",
    "preset_labels",
    "series_key",
    "structure_family",
    "vocabulary",
]
