"""``evaluate``: metrics checked by hand on a tiny truth table, outputs and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qsaudit.analyses.evaluate import (
    auroc,
    evaluate_predictions,
    mae,
    pearson,
    quality_metrics,
    spearman,
    write_evaluation,
)
from qsaudit.cli import app
from qsaudit.errors import AnalysisError


def test_metrics_by_hand():
    # x = 1,2,3 ; y = 2,4,7: means 2 and 13/3; cov = (-1)(-7/3)+0+(1)(8/3) = 5
    # sx^2 = 2, sy^2 = 49/9+1/9+64/9 = 114/9 -> r = 5 / sqrt(2 * 114/9)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))
    assert spearman([1, 2, 3], [2, 4, 7]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    assert mae([0.5, 1.0], [0.7, 0.6]) == pytest.approx(0.3)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    # positives scores 0.9, 0.4; negatives 0.5, 0.1: pairs won 1+1+0+1 = 3 of 4
    assert auroc([0.9, 0.4, 0.5, 0.1], [True, True, False, False]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half
    assert auroc([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    assert math.isnan(auroc([0.1, 0.2], [True, True]))


def _tables():
    results = pd.DataFrame({
        "case_id": ["a", "a", "b", "b", "c"],
        "label": ["liver", "spleen", "liver", "spleen", "liver"],
        "structure": ["liver", "spleen", "liver", "spleen", "liver"],
        "predicted_dsc": [0.9, 0.5, 0.7, np.nan, 0.95],
        "status": ["ok", "ok", "ok", "empty", "ok"],
    })
    truth = pd.DataFrame({
        "case_id": ["a", "a", "b", "b", "c", "d"],
        "label": ["liver", "spleen", "liver", "spleen", "liver", "liver"],
        "true_dsc": [0.95, 0.4, 0.85, 0.0, 0.99, 0.5],
        "error": ["none", "erosion", "shift", "empty", "none", "none"],
    })
    return results, truth


def test_evaluate_predictions_on_a_hand_made_table(tmp_path):
    results, truth = _tables()
    ev = evaluate_predictions(results, truth, threshold=0.8)
    pred = [0.9, 0.5, 0.7, 0.95]
    true = [0.95, 0.4, 0.85, 0.99]
    assert ev.overall["n"] == 4 and ev.overall["n_bad"] == 1
    assert ev.overall["mae"] == pytest.approx((0.05 + 0.1 + 0.15 + 0.04) / 4)
    assert ev.overall["pearson"] == pytest.approx(np.corrcoef(pred, true)[0, 1])
    assert ev.overall["auroc"] == pytest.approx(1.0)   # the bad spleen has the lowest score
    assert ev.unmatched == {"results_without_truth": 0, "truth_without_prediction": 2,
                            "not_ok": 1}
    liver = ev.groups[(ev.groups.scope == "structure") & (ev.groups.group == "liver")].iloc[0]
    assert liver.n == 3 and liver.mae == pytest.approx((0.05 + 0.15 + 0.04) / 3)
    assert set(ev.groups[ev.groups.scope == "error"].group) == {"none", "erosion", "shift"}
    paths = write_evaluation(ev, tmp_path)
    assert [p.name for p in paths] == ["evaluation.csv", "evaluation.json", "evaluation.png"]
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["overall"]["n"] == 4 and len(saved["labels"]) == 4
    assert (tmp_path / "evaluation.png").read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(tmp_path / "evaluation.csv").scope.iloc[0] == "all"


def test_interval_coverage_and_width_per_group():
    results, truth = _tables()
    # true 0.95 in [0.8, 1.0]; 0.4 outside [0.45, 0.6]; 0.85 in [0.6, 0.9]; 0.99 outside
    results["dsc_low"] = [0.8, 0.45, 0.6, np.nan, 0.9]
    results["dsc_high"] = [1.0, 0.6, 0.9, np.nan, 0.98]
    ev = evaluate_predictions(results, truth)
    assert ev.overall["coverage"] == pytest.approx(0.5)
    assert ev.overall["width"] == pytest.approx((0.2 + 0.15 + 0.3 + 0.08) / 4)
    liver = ev.groups[(ev.groups.scope == "structure") & (ev.groups.group == "liver")].iloc[0]
    assert liver.coverage == pytest.approx(2 / 3)
    # a label without an interval is left out of the coverage, not counted as a miss
    results.loc[0, ["dsc_low", "dsc_high"]] = np.nan
    assert evaluate_predictions(results, truth).overall["coverage"] == pytest.approx(1 / 3)
    # results without interval columns: the rest of the metrics, coverage NaN
    plain = evaluate_predictions(results.drop(columns=["dsc_low", "dsc_high"]), truth)
    assert math.isnan(plain.overall["coverage"]) and plain.overall["n"] == 4


def test_quality_metrics_detect_a_planted_bad_label():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.85, 1.0, 30)
    true[7] = 0.3
    pred = true + rng.normal(0, 0.02, 30)
    m = quality_metrics(pred, true)
    assert m["auroc"] == 1.0 and m["n_bad"] == 1 and m["pearson"] > 0.9


def test_nothing_matches_is_an_error():
    results, truth = _tables()
    truth["case_id"] = "zzz"
    with pytest.raises(AnalysisError, match="no label"):
        evaluate_predictions(results, truth)


def test_evaluate_command(tmp_path):
    results, truth = _tables()
    res_dir = tmp_path / "report"
    res_dir.mkdir()
    results.to_csv(res_dir / "results.csv", index=False)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    run = CliRunner().invoke(app, ["evaluate", "--results", str(res_dir), "--truth",
                                   str(tmp_path / "truth.csv"), "--quiet"],
                             env={"COLUMNS": "160"})
    assert run.exit_code == 0, run.output
    assert "Pearson" in run.output and "liver" in run.output
    assert "cover" not in run.output  # these results carry no interval
    assert (res_dir / "evaluation.csv").is_file() and (res_dir / "evaluation.png").is_file()
    results["dsc_low"], results["dsc_high"] = 0.0, 1.0
    results.to_csv(res_dir / "results.csv", index=False)
    run = CliRunner().invoke(app, ["evaluate", "--results", str(res_dir), "--truth",
                                   str(tmp_path / "truth.csv"), "--quiet"],
                             env={"COLUMNS": "160"})
    assert run.exit_code == 0 and "cover" in run.output
    assert (pd.read_csv(res_dir / "evaluation.csv").coverage == 1.0).all()
    bad = CliRunner().invoke(app, ["evaluate", "--results", str(res_dir)])
    assert bad.exit_code == 2 and "--truth" in bad.output


def test_truth_from_reference(tmp_path):
    import nibabel as nib

    from qsaudit.analyses.evaluate import truth_from_reference

    affine = np.eye(4)
    ref = np.zeros((8, 8, 4), np.uint8)
    ref[2:6, 2:6, 1:3] = 1                      # 32 voxels
    lab = np.zeros_like(ref)
    lab[2:6, 2:4, 1:3] = 1                      # 16 voxels, all inside -> 2*16/48
    for root, mask in ((tmp_path / "ds", lab), (tmp_path / "ref", ref)):
        seg = root / "case1" / "segmentations"
        seg.mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), affine),
                 root / "case1" / "ct.nii.gz")
        nib.save(nib.Nifti1Image(mask, affine), seg / "liver.nii.gz")
    truth = truth_from_reference(tmp_path / "ds", tmp_path / "ref")
    assert truth.loc[0, "label"] == "liver"
    assert truth.loc[0, "true_dsc"] == pytest.approx(2 * 16 / 48)


def _kind_tables():
    """Six labels: three bad (true Dice < 0.8) of known kind, one harmless erosion (a ``none``),
    two perfect; the classifier names two of the three bad ones and one perfect one."""
    results = pd.DataFrame({
        "case_id": list("abcdef"), "label": ["liver"] * 6, "structure": ["liver"] * 6,
        "predicted_dsc": [0.5, 0.4, 0.6, 0.95, 0.97, 0.9],
        "likely_error": ["too_small", "cut_short", "leak", "none", "none", "shifted"],
    })
    truth = pd.DataFrame({
        "case_id": list("abcdef"), "label": ["liver"] * 6,
        "true_dsc": [0.5, 0.45, 0.6, 0.97, 1.0, 1.0],
        "error": ["erosion", "truncation", "dilation", "erosion", "none", "none"],
    })
    return results, truth


def test_error_kinds_confusion_and_top1_over_bad_labels(tmp_path):
    results, truth = _kind_tables()
    kinds = evaluate_predictions(results, truth).error_kinds
    assert kinds["n_bad"] == 3 and kinds["top1_bad"] == pytest.approx(2 / 3)
    assert kinds["n_perfect"] == 2 and kinds["none_perfect"] == pytest.approx(0.5)
    assert kinds["confusion"]["too_large"]["leak"] == 1
    assert kinds["confusion"]["cut_short"]["cut_short"] == 1
    assert kinds["per_kind"] == {"too_small": 1.0, "too_large": 0.0, "cut_short": 1.0}
    write_evaluation(evaluate_predictions(results, truth), tmp_path)
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["error_kinds"]["top1_bad"] == pytest.approx(2 / 3)
    # results of a model without a classifier, or a truth without kinds: no such metrics
    assert evaluate_predictions(results.drop(columns="likely_error"), truth).error_kinds is None
    assert evaluate_predictions(results, truth.drop(columns="error")).error_kinds is None


def test_evaluate_command_prints_the_confusion_matrix(tmp_path):
    results, truth = _kind_tables()
    res_dir = tmp_path / "report"
    res_dir.mkdir()
    results.to_csv(res_dir / "results.csv", index=False)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    run = CliRunner().invoke(app, ["evaluate", "--results", str(res_dir), "--truth",
                                   str(tmp_path / "truth.csv"), "--quiet"],
                             env={"COLUMNS": "200"})
    assert run.exit_code == 0, run.output
    assert "likely_error vs the true error" in run.output
    assert "top-1 accuracy over 3 bad labels: 0.667" in run.output
