"""pydicom and highdicom stay out of the CLI's help: they load only when DICOM is read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_help_does_not_import_the_dicom_libraries():
    for args in (["--help"], ["scan", "--help"], ["datasets", "--help"]):
        code = ("import sys\nfrom qsaudit.cli import app\n"
                f"sys.argv = ['qsaudit'] + {args!r}\n"
                "try:\n    app()\nexcept SystemExit:\n    pass\n"
                "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=ROOT, check=True)
        loaded = set(proc.stderr.split())
        assert "qsaudit.cli" in loaded
        assert not {"pydicom", "highdicom"} & loaded, f"qsaudit {' '.join(args)}"
