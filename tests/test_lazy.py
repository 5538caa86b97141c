"""Packages whose heavy names load on first use: a reader process imports them light."""

import subprocess
import sys

import pytest

from qsaudit.lazy import lazy_attributes


def test_packages_import_without_the_engine_and_load_it_on_first_use():
    code = (
        "import sys\n"
        "import qsaudit.inference, qsaudit.reports\n"
        "heavy = ('qsaudit.inference.engine', 'qsaudit.reports.scan_report', 'pandas')\n"
        "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]\n"
        "from qsaudit.inference import scan_dataset\n"
        "from qsaudit.reports import render_report\n"
        "from qsaudit.inference.engine import scan_dataset as direct\n"
        "assert scan_dataset is direct and 'scan_dataset' in vars(qsaudit.inference)\n"
        "assert 'render_report' in vars(qsaudit.reports)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr


def test_unknown_names_raise_attribute_error():
    getter = lazy_attributes("qsaudit.inference", {"scan_dataset": "engine"})
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getter("nope")
    import qsaudit.inference

    with pytest.raises(AttributeError):
        qsaudit.inference.nope  # noqa: B018
