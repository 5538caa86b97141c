"""Synthetic abdominal CT phantoms with known-quality labels, for ``qsaudit demo`` and tests.

:func:`make_phantom` draws one patient (CT in HU + correct TotalSegmentator-named masks);
:func:`make_demo` writes a whole demo dataset whose labels were degraded at known rates, so the
true Dice of every label is known (``truth.csv``).
"""

from qsaudit.phantoms.demo import DemoSummary, make_demo
from qsaudit.phantoms.phantom import Phantom, make_phantom

__all__ = ["DemoSummary", "Phantom", "make_demo", "make_phantom"]
