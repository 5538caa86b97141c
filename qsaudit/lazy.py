"""Package attributes imported on first use, so that importing a package stays light.

A reader process imports ``qsaudit.inference.prepare`` and ``qsaudit.reports.thumbnails``; their
packages' ``__init__`` must then not pull in the scan engine, pandas or the report templates.
A package lists which of its public names live in which submodule and sets
``__getattr__ = lazy_attributes(__name__, {...})`` (PEP 562).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: a name of ``names`` (name -> submodule) is
    imported from ``package.submodule`` on first use and kept in the package's namespace, so
    later uses are plain lookups; any other name raises AttributeError."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
