"""Allow ``python -m qsaudit``."""

from qsaudit.cli import run

run()
