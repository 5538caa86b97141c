"""An unexpected failure on one label gives that label an error row; its case goes on."""

from qsaudit.datasets import list_cases
from qsaudit.inference import prepare
from qsaudit.inference.prepare import PrepareSpec, prepare_case
from qsaudit.model.config import ModelConfig


def test_one_failing_label_does_not_fail_its_case(tiny_dataset, monkeypatch):
    real = prepare._prepare_label

    def flaky(case, ref, *args, **kwargs):
        if ref.name == "spleen":
            raise RuntimeError("planted failure")
        return real(case, ref, *args, **kwargs)

    monkeypatch.setattr(prepare, "_prepare_label", flaky)
    case = list_cases(tiny_dataset)[0]
    done = prepare_case(case, PrepareSpec(model_config=ModelConfig(input_size=32), slices=4))
    status = {w.label: w.row["status"] for w in done.labels}
    assert status.pop("spleen") == "error"
    assert set(status.values()) == {"ok"} and len(status) == 5
    spleen = next(w for w in done.labels if w.label == "spleen")
    assert spleen.row["error"] == "RuntimeError: planted failure" and spleen.n_slices == 0
