"""Domain exceptions. The library raises these; the CLI turns them into one red line.

Every message names the file or value at fault and the problem, e.g.
``DatasetError('"data/case1/ct.nii.gz": not a NIfTI file (truncated gzip stream)')``.
"""

from __future__ import annotations


class QsauditError(Exception):
    """Base class of every error qsaudit reports to a user (exit code 1 at the CLI)."""


class UsageError(QsauditError):
    """Bad arguments or unusable inputs given by the user (exit code 2 at the CLI)."""


class DatasetError(QsauditError):
    """A dataset folder, an image or a label file cannot be read or does not make sense."""


class ModelError(QsauditError):
    """A model checkpoint, text encoder or weights cannot be loaded or used."""


class AnalysisError(QsauditError):
    """An analysis (bias, budget, select, gate, evaluate) cannot be carried out on its inputs."""


class ResultsError(QsauditError):
    """A results folder is missing, incomplete or was made with different settings."""
