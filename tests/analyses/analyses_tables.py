"""Tiny seeded results/metadata/truth tables for the analyses tests (built on the fly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qsaudit.columns import FLAG_COLUMNS

STRUCTURES = ("liver", "spleen", "kidney_left")


def make_results(n_cases: int = 8, *, structures: tuple[str, ...] = STRUCTURES, seed: int = 0,
                 dsc: np.ndarray | None = None) -> pd.DataFrame:
    """A results table with every RESULT column a test may need, case ids s0001…"""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_cases):
        for s in structures:
            rows.append({"case_id": f"s{i + 1:04d}", "label": s, "structure": s,
                         "predicted_dsc": float(rng.uniform(0.5, 1.0)),
                         "mask_slices": int(rng.integers(5, 50)),
                         "voxels": int(rng.integers(100, 5000)), "n_flags": 0,
                         "status": "ok", "error": "",
                         "image_path": f"/data/s{i + 1:04d}/ct.nii.gz",
                         "label_path": f"/data/s{i + 1:04d}/segmentations/{s}.nii.gz",
                         **{f: False for f in FLAG_COLUMNS}})
    df = pd.DataFrame(rows)
    if dsc is not None:
        df["predicted_dsc"] = dsc
    return df


def write_results(df: pd.DataFrame, folder: Path, *, fmt: str = "csv") -> Path:
    """Write ``df`` as results.csv or results.parquet into ``folder``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        df.to_csv(folder / "results.csv", index=False)
    else:
        df.to_parquet(folder / "results.parquet", index=False)
    return folder


def write_meta(path: Path, rows: list[tuple[str, str, str]], *, sep: str = ";",
               header: tuple[str, str, str] = ("image_id", "age", "gender"),
               bom: bool = True) -> Path:
    """A metadata file like TotalSegmentator's meta.csv (BOM, ';') from (id, age, sex)."""
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    text = "\n".join(lines) + "\n"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path
