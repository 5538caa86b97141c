"""Allow ``python -m qsaudit``."""

from qsaudit.cli import app

app()
