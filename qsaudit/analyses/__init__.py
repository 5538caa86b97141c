"""Analyses over scan results: bias, correction budget, pseudo-label selection and CI gating.

Each analysis is a pure function over the results table (see :mod:`qsaudit.columns`) returning
a frozen result dataclass; the ``qsaudit`` commands only load, call and render.
"""
