"""Loading results and truth tables: folders, files, dtypes and clear errors."""

from __future__ import annotations

import pandas as pd
import pytest
from analyses_tables import make_results, write_results

from qsaudit.analyses.results import attach_truth, load_results, load_truth, ok_rows, results_dir
from qsaudit.errors import ResultsError, UsageError


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_load_results_folder_gives_column_dtypes(tmp_path, fmt):
    df = make_results(3)
    df.loc[0, "status"] = "unreadable"
    df.loc[0, "predicted_dsc"] = float("nan")
    folder = write_results(df, tmp_path / "r", fmt=fmt)
    out = load_results(folder)
    assert len(out) == 9
    assert out["predicted_dsc"].dtype == "float64"
    assert out["flag_empty"].dtype == "boolean"
    assert str(out["n_flags"].dtype) == "Int64"
    assert out["case_id"].iloc[1] == "s0001"
    ok, skipped = ok_rows(out)
    assert (len(ok), skipped) == (8, 1)


def test_load_results_file_and_minimal_columns(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("case_id,label,predicted_dsc,flag_edge\na,liver,0.7,True\nb,liver,0.9,\n")
    out = load_results(path)
    assert out["structure"].tolist() == ["liver", "liver"]
    assert out["status"].tolist() == ["ok", "ok"]
    assert out["flag_edge"].tolist() == [True, False]
    assert out["n_flags"].tolist() == [1, 0]
    assert results_dir(path) == tmp_path


def test_load_results_errors_name_the_path(tmp_path):
    with pytest.raises(UsageError, match="nowhere"):
        load_results(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no results.parquet or results.csv"):
        load_results(tmp_path / "empty")
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,label\na,liver\n")
    with pytest.raises(ResultsError, match="missing column.*predicted_dsc"):
        load_results(bad)
    bad.write_text("case_id,label,predicted_dsc\na,liver,high\n")
    with pytest.raises(ResultsError, match='non-numeric value "high"'):
        load_results(bad)
    bad.write_text("case_id,label,predicted_dsc\na,liver,0.5\na,liver,0.6\n")
    with pytest.raises(ResultsError, match="appears twice"):
        load_results(bad)
    parquet = tmp_path / "broken.parquet"
    parquet.write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="cannot read"):
        load_results(parquet)
    with pytest.raises(UsageError, match="expected a results folder"):
        (tmp_path / "x.json").write_text("{}")
        load_results(tmp_path / "x.json")


def test_truth_loading_and_attaching(tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text("case_id,label,true_dsc,error,severity\ns0001,liver,0.4,erode,0.5\n"
                    "s0001,spleen,1.0,none,0\n")
    truth = load_truth(path)
    res = make_results(2, structures=("liver", "spleen"))
    matched, missing = attach_truth(res, truth)
    assert len(matched) == 2 and missing == 2
    assert matched.set_index("label").loc["liver", "true_dsc"] == pytest.approx(0.4)
    path.write_text("case_id,label,true_dsc\ns0001,liver,1.4\n")
    with pytest.raises(UsageError, match="outside"):
        load_truth(path)
    path.write_text("case_id,true_dsc\ns0001,0.4\n")
    with pytest.raises(UsageError, match="missing column"):
        load_truth(path)
    with pytest.raises(UsageError, match="no such truth"):
        load_truth(tmp_path / "none.csv")
    assert isinstance(truth, pd.DataFrame)
