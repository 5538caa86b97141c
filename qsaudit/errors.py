"""Domain exceptions. The library raises these; the CLI turns them into one red line.

Every message names the file or value at fault and the problem, e.g.
``DatasetError('"data/case1/ct.nii.gz": not a NIfTI file (truncated gzip stream)')``.

``exit_code`` is the CLI's exit code for the error, one convention for every command: 0 ok,
1 a quality finding (``gate``) or a run that failed for a reason outside its inputs (a reader
process died, a full disk), 2 bad arguments or unusable inputs (every subclass below), 130
interrupted.
"""

from __future__ import annotations


class QsauditError(Exception):
    """Base class of every error qsaudit reports to a user (exit code 1 at the CLI)."""

    exit_code = 1


class InputError(QsauditError):
    """Something the user gave cannot be used: an argument, a file, a folder (exit code 2)."""

    exit_code = 2


class UsageError(InputError):
    """Bad arguments or unusable inputs given by the user (exit code 2 at the CLI)."""


class DatasetError(InputError):
    """A dataset folder, an image or a label file cannot be read or does not make sense."""


class ModelError(InputError):
    """A model checkpoint, text encoder or weights cannot be loaded or used."""


class AnalysisError(InputError):
    """An analysis (bias, budget, select, gate, evaluate) cannot be carried out on its inputs."""


class ResultsError(InputError):
    """A results folder is missing, incomplete or was made with different settings."""
