"""HTML reports of qsaudit: the scan report (``render_report``) and its building blocks.

Import from here: ``from qsaudit.reports import render_report, ThumbnailInputs``. The report
and its tables (pandas, Jinja) are imported on first use, so a reader process that only cuts
thumbnails (:mod:`qsaudit.reports.thumbnails`) starts without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qsaudit.lazy import lazy_attributes
from qsaudit.reports.thumbnails import (
    PlaneView,
    ThumbnailInputs,
    make_thumbnail,
    make_views,
    select_thumbnail_slices,
)

if TYPE_CHECKING:
    from qsaudit.reports.scan_report import (
        render_report,
        render_report_from_folder,
        template_environment,
        templates_dir,
    )
    from qsaudit.reports.tables import worst_labels

_LAZY = {"render_report": "scan_report", "render_report_from_folder": "scan_report",
         "template_environment": "scan_report", "templates_dir": "scan_report",
         "worst_labels": "tables"}

__all__ = [
    "PlaneView",
    "ThumbnailInputs",
    "make_thumbnail",
    "make_views",
    "render_report",
    "render_report_from_folder",
    "select_thumbnail_slices",
    "template_environment",
    "templates_dir",
    "worst_labels",
]

__getattr__ = lazy_attributes(__name__, _LAZY)
