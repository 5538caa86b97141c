"""``qsaudit gate``: decide whether a change to a dataset keeps its label quality (for CI).

Checks, on the current results and optionally a baseline results table:

* ``below_min_dsc`` — an ok label with predicted DSC below the structure's ``min_dsc``;
* ``mean_drop`` — a structure's mean predicted DSC fell by more than ``max_drop`` (DSC points,
  e.g. 0.05) versus the baseline;
* ``dropped_label`` — a label in the baseline is missing now; ``newly_failed`` — a label ok in
  the baseline no longer has an ok status;
* ``newly_empty`` / ``newly_flagged`` — a mask is empty now and was not, or raises a model-free
  flag (``flag_*``) it did not raise before (``n_flags`` increased). Without a baseline, empty
  masks and flags are warnings only: real datasets hold empty masks for structures outside the
  field of view, and only a change against a baseline says something went wrong.

Thresholds come from a policy (TOML) ``[default]`` section and ``[structures."<name>"]``
sections (matched on structure or label name); command-line values replace ``[default]``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from qsaudit.columns import FLAG_COLUMNS
from qsaudit.errors import UsageError

POLICY_KEYS = {"min_dsc", "max_drop", "fail_on_new_flags"}


@dataclass(frozen=True)
class Thresholds:
    """Limits for one structure: ``min_dsc`` and ``max_drop`` in DSC units (None = not checked);
    ``fail_on_new_flags``: new flags are errors (True) or warnings (False)."""

    min_dsc: float | None = None
    max_drop: float | None = None
    fail_on_new_flags: bool = True


@dataclass(frozen=True)
class GatePolicy:
    """Default thresholds and per-structure overrides (keys: structure or label names)."""

    default: Thresholds = field(default_factory=Thresholds)
    structures: dict[str, Thresholds] = field(default_factory=dict)

    def for_structure(self, structure: str) -> Thresholds:
        """The thresholds that apply to ``structure``."""
        return self.structures.get(structure, self.default)

    def with_defaults(self, *, min_dsc: float | None = None, max_drop: float | None = None
                      ) -> GatePolicy:
        """Replace the default (and unset per-structure) thresholds by command-line values."""
        changes = {k: v for k, v in (("min_dsc", min_dsc), ("max_drop", max_drop))
                   if v is not None}
        if not changes:
            return self
        return GatePolicy(default=replace(self.default, **changes), structures=self.structures)


def _thresholds(table: dict[str, Any], where: str, base: Thresholds, path: Path) -> Thresholds:
    unknown = set(table) - POLICY_KEYS
    if unknown:
        raise UsageError(f'"{path}": unknown key(s) {", ".join(sorted(unknown))} in {where} '
                         f'(expected {", ".join(sorted(POLICY_KEYS))})')
    values: dict[str, Any] = {}
    for key in ("min_dsc", "max_drop"):
        if key in table:
            v = table[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise UsageError(f'"{path}": {where}.{key} = {v!r} must be a number in [0, 1]')
            values[key] = float(v)
    if "fail_on_new_flags" in table:
        if not isinstance(table["fail_on_new_flags"], bool):
            raise UsageError(f'"{path}": {where}.fail_on_new_flags must be true or false')
        values["fail_on_new_flags"] = table["fail_on_new_flags"]
    return replace(base, **values)


def load_policy(path: str | Path) -> GatePolicy:
    """Read a TOML policy, e.g. ``[default] min_dsc = 0.5`` / ``max_drop = 0.05`` and
    ``[structures."liver"] min_dsc = 0.9``. Raises :class:`UsageError` when unusable."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f'"{path}": the policy is a folder, not a TOML file')
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f'"{path}": no such policy file') from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f'"{path}": not a valid TOML policy ({exc})') from None
    except OSError as exc:
        raise UsageError(f'"{path}": cannot read the policy ({exc.strerror or exc})') from None
    unknown = set(data) - {"default", "structures"}
    if unknown:
        raise UsageError(f'"{path}": unknown section(s) {", ".join(sorted(unknown))} (expected '
                         "[default] and [structures.\"<name>\"])")
    default = _thresholds(data.get("default", {}), "[default]", Thresholds(), path)
    structures = {str(name): _thresholds(t, f'[structures."{name}"]', default, path)
                  for name, t in data.get("structures", {}).items()}
    return GatePolicy(default=default, structures=structures)


@dataclass(frozen=True)
class Finding:
    """One problem: ``level`` "error" (fails the gate) or "warning"."""

    level: str
    kind: str
    structure: str
    message: str
    case_id: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class GateResult:
    """Outcome of :func:`check_gate`. ``structures``: one row per structure (n_labels,
    mean_dsc, baseline_mean, drop, min_dsc, max_drop, n_errors, n_warnings, passed)."""

    findings: list[Finding]
    structures: pd.DataFrame
    has_baseline: bool
    n_skipped: int

    @property
    def passed(self) -> bool:
        """True when no finding is an error."""
        return not any(f.level == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        """The findings that fail the gate."""
        return [f for f in self.findings if f.level == "error"]


def _truthy(value: Any) -> bool:
    try:
        return bool(value)
    except TypeError:  # pd.NA
        return False


def _count(value: Any) -> int:
    if value is None or pd.isna(value):
        return 0
    return int(value)


def _flags(row: Any) -> set[str]:
    return {f for f in FLAG_COLUMNS if _truthy(row.get(f, False))}


def _likely(row: Any) -> str:
    """"; likely cut short at the top: extend it over slices 40-52" when the results name the
    label's error (``likely_error``, not ``none``), else ""."""
    from qsaudit.inference.error_kinds import row_task

    kind = getattr(row, "likely_error", None)
    if not isinstance(kind, str) or kind == "none":
        return ""
    return f"; likely {row_task(row)}"


def _policy_key(policy: GatePolicy, structure: str, label: str) -> Thresholds:
    if structure in policy.structures:
        return policy.structures[structure]
    return policy.structures.get(label, policy.default)


def check_gate(current: pd.DataFrame, *, baseline: pd.DataFrame | None = None,
               policy: GatePolicy | None = None) -> GateResult:
    """Check ``current`` results (normalised, see ``load_results``) against thresholds and an
    optional ``baseline``. Raises :class:`UsageError` when there is nothing to check."""
    policy = policy or GatePolicy()
    has_min = policy.default.min_dsc is not None or any(
        t.min_dsc is not None for t in policy.structures.values())
    if baseline is None and not has_min:
        raise UsageError("nothing to check: give --min-dsc, --baseline or a --policy with "
                         "thresholds")
    findings: list[Finding] = []
    cur = current.copy()
    ok_mask = (cur["status"] == "ok").fillna(False) & cur["predicted_dsc"].notna()
    ok = cur[ok_mask]
    for r in ok.itertuples(index=False):
        t = _policy_key(policy, r.structure, r.label)
        if t.min_dsc is not None and r.predicted_dsc < t.min_dsc:
            findings.append(Finding("error", "below_min_dsc", r.structure,
                                    f"{r.case_id}/{r.label}: predicted DSC {r.predicted_dsc:.3f}"
                                    f" < min {t.min_dsc:.3f}{_likely(r)}", r.case_id, r.label))
    base_means: dict[str, float] = {}
    if baseline is not None:
        findings += _compare(cur, baseline, policy)
        b_ok = baseline[(baseline["status"] == "ok").fillna(False)
                        & baseline["predicted_dsc"].notna()]
        base_means = b_ok.groupby("structure")["predicted_dsc"].mean().to_dict()
    else:
        for r in cur.to_dict(orient="records"):
            flags = _flags(r)
            if "flag_empty" in flags:
                findings.append(Finding("warning", "empty", r["structure"],
                                        f'{r["case_id"]}/{r["label"]}: mask is empty',
                                        r["case_id"], r["label"]))
            elif flags:
                findings.append(Finding("warning", "flagged", r["structure"],
                                        f'{r["case_id"]}/{r["label"]}: flagged '
                                        f'{", ".join(sorted(flags))}', r["case_id"], r["label"]))
    means = ok.groupby("structure")["predicted_dsc"].agg(["mean", "size"])
    rows = []
    names = sorted(set(cur["structure"].dropna()) | set(base_means))
    for s in names:
        t = policy.for_structure(s)
        mean = float(means.loc[s, "mean"]) if s in means.index else float("nan")
        bmean = base_means.get(s, float("nan"))
        drop = bmean - mean if baseline is not None else float("nan")
        if t.max_drop is not None and not math.isnan(drop) and drop > t.max_drop + 1e-12:
            findings.append(Finding("error", "mean_drop", s,
                                    f"{s}: mean predicted DSC fell by {drop:.3f} "
                                    f"({bmean:.3f} → {mean:.3f}) > max drop {t.max_drop:.3f}"))
        rows.append({"structure": s, "n_labels": int(means.loc[s, "size"])
                     if s in means.index else 0, "mean_dsc": mean, "baseline_mean": bmean,
                     "drop": drop, "min_dsc": t.min_dsc, "max_drop": t.max_drop})
    table = pd.DataFrame(rows, columns=["structure", "n_labels", "mean_dsc", "baseline_mean",
                                        "drop", "min_dsc", "max_drop"])
    table["n_errors"] = [sum(f.structure == s and f.level == "error" for f in findings)
                         for s in table["structure"]]
    table["n_warnings"] = [sum(f.structure == s and f.level == "warning" for f in findings)
                           for s in table["structure"]]
    table["passed"] = table["n_errors"] == 0
    return GateResult(findings=findings, structures=table, has_baseline=baseline is not None,
                      n_skipped=int((~ok_mask).sum()))


def _compare(cur: pd.DataFrame, base: pd.DataFrame, policy: GatePolicy) -> list[Finding]:
    out: list[Finding] = []
    now = {(r["case_id"], r["label"]): r for r in cur.to_dict(orient="records")}
    for b in base.to_dict(orient="records"):
        key = (b["case_id"], b["label"])
        where = f"{key[0]}/{key[1]}"
        s = b["structure"]
        r = now.pop(key, None)
        if r is None:
            out.append(Finding("error", "dropped_label", s, f"{where}: in the baseline, "
                               "missing now", *key))
            continue
        s = r["structure"]
        level = "error" if _policy_key(policy, s, key[1]).fail_on_new_flags else "warning"
        if b["status"] == "ok" and r["status"] != "ok":
            out.append(Finding("error", "newly_failed", s, f'{where}: status "{r["status"]}" '
                               f'(was ok){": " + str(r["error"]) if r.get("error") else ""}',
                               *key))
        new = _flags(r) - _flags(b)
        if "flag_empty" in new:
            out.append(Finding("error", "newly_empty", s, f"{where}: mask is empty now", *key))
            new.discard("flag_empty")
        grew = _count(r.get("n_flags")) > _count(b.get("n_flags"))
        if new or grew:
            what = ", ".join(sorted(new)) if new else (f'n_flags {b.get("n_flags")} → '
                                                       f'{r.get("n_flags")}')
            out.append(Finding(level, "newly_flagged", s, f"{where}: newly flagged {what}",
                               *key))
    for key, r in now.items():
        out.append(Finding("warning", "new_label", r["structure"],
                           f"{key[0]}/{key[1]}: new label (not in the baseline)", *key))
    return out
