"""HTML reports of qsaudit: the scan report (``render_report``) and its building blocks.

Import from here: ``from qsaudit.reports import render_report, ThumbnailInputs``.
"""

from __future__ import annotations

from qsaudit.reports.scan_report import (
    render_report,
    render_report_from_folder,
    template_environment,
    templates_dir,
)
from qsaudit.reports.tables import worst_labels
from qsaudit.reports.thumbnails import (
    PlaneView,
    ThumbnailInputs,
    make_thumbnail,
    make_views,
    select_thumbnail_slices,
)

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
