"""Latency predictor: features, the JSONL dataset, the split, the criterion's metrics, and a real fairseq-train run."""
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fairseq.logging import metrics
from scipy.stats import kendalltau

from fairseq_shiftadd.criterions.latency_predictor import LatencyPredictorCriterion
from fairseq_shiftadd.hardware.features import feature_layout, subnet_feature_matrix, subnet_features
from fairseq_shiftadd.hardware.latency_dataset import (
    LatencyDataError,
    LatencyRecord,
    append_latency_record,
    read_latency_records,
)
from fairseq_shiftadd.hardware.predictor import LatencyPredictor
from fairseq_shiftadd.models.latency_mlp import LatencyMLP, parse_hidden_dims
from fairseq_shiftadd.space import SearchSpace, SpaceError, Subnet
from fairseq_shiftadd.tasks.latency_prediction import split_records

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "spaces" / "tiny.yml"


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_file(TINY)


def _subnet() -> Subnet:
    return Subnet(
        encoder_embed_dim=64, decoder_embed_dim=32, encoder_layer_num=2, decoder_layer_num=1,
        encoder_ffn_embed_dim=(128, 64), decoder_ffn_embed_dim=(64,),
        encoder_self_attention_heads=(4, 2), decoder_self_attention_heads=(2,),
        decoder_ende_attention_heads=(4,), decoder_arbitrary_ende_attn=(-1,),
        encoder_block_types=("attn+add", "shiftadd"), decoder_block_types=("attn+conv",),
        encoder_ffn_types=("shift", "add"), decoder_ffn_types=("mult",),
    )


def test_features_match_hand_computation_for_tiny_space(space):
    expected = (
        [64 / 64, 32 / 64, 2 / 2, 1 / 2]  # embed dims, layer nums
        + [128 / 128, 64 / 128]  # encoder FFN dims
        + [4 / 4, 2 / 4]  # encoder heads
        + [0, 0, 0, 0, 0, 1, 0] + [0, 0, 0, 1, 0, 0, 0]  # encoder blocks: attn+add, shiftadd
        + [0, 1, 0] + [0, 0, 1]  # encoder FFN types: shift, add
        + [64 / 128, 0]  # decoder FFN dims (layer 1 inactive)
        + [2 / 4, 0]  # decoder self heads
        + [4 / 4, 0]  # decoder ende heads
        + [-1 / 1, 0]  # arbitrary ende attn
        + [0, 1, 0, 0] + [0, 0, 0, 0]  # decoder blocks: attn+conv, inactive
        + [1, 0, 0] + [0, 0, 0]  # decoder FFN types: mult, inactive
    )
    assert feature_layout(space).dim == len(expected) == 50
    assert subnet_features(space, _subnet()) == pytest.approx(expected)


def test_feature_matrix_rows_equal_single_subnet_features(space):
    rng = random.Random(3)
    subnets = [space.sample(rng) for _ in range(20)]
    matrix = subnet_feature_matrix(space, subnets)
    assert matrix.shape == (20, 50) and matrix.dtype == np.float32
    for row, subnet in zip(matrix, subnets):
        assert row.tolist() == subnet_features(space, subnet)


def test_subnet_outside_space_names_the_field(space):
    bad = Subnet(**{**_subnet().__dict__, "encoder_embed_dim": 48})
    with pytest.raises(SpaceError, match=r"encoder-embed-dim-subtransformer = 48 is not in the search space tiny"):
        subnet_feature_matrix(space, [_subnet(), bad])


def test_split_is_deterministic_and_never_shares_a_subnet(space):
    rng = random.Random(0)
    subnets = [space.sample(rng) for _ in range(300)]
    records = [LatencyRecord(s, 1.0 + i, "cpu", "x", 1) for i, s in enumerate(subnets + subnets[:50])]  # re-measured
    first = split_records(records, seed=7, valid_fraction=0.2)
    again = split_records(records, seed=7, valid_fraction=0.2)
    assert [r.latency_ms for r in first["valid"]] == [r.latency_ms for r in again["valid"]]
    train_keys = {r.subnet.key() for r in first["train"]}
    valid_keys = {r.subnet.key() for r in first["valid"]}
    assert not train_keys & valid_keys
    assert len(first["train"]) + len(first["valid"]) == len(records)
    assert 0.1 < len(first["valid"]) / len(records) < 0.3
    other_seed = split_records(records, seed=8, valid_fraction=0.2)
    assert {r.subnet.key() for r in other_seed["valid"]} != valid_keys


def _write_records(path: Path, space: SearchSpace, count: int, seed: int = 0) -> list[LatencyRecord]:
    rng = random.Random(seed)
    records = [LatencyRecord(space.sample(rng), 10.0 + i, "cpu", torch.__version__, 2) for i in range(count)]
    for record in records:
        append_latency_record(path, record)
    return records


def test_records_round_trip(tmp_path, space):
    path = tmp_path / "lat.jsonl"
    written = _write_records(path, space, 5)
    assert read_latency_records(path, space) == written
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"subnet", "latency_ms", "device", "torch", "threads"}
    assert first["subnet"] == written[0].subnet.to_yaml_dict()


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ('{"subnet": {', "not valid JSON"),
        ('{"latency_ms": 3.0, "device": "cpu", "torch": "x", "threads": 1}', "missing key 'subnet'"),
        ("SUBNET_WITH_LATENCY -2", "latency_ms = -2 must be a positive number"),
        ("OUTSIDE_SPACE", "encoder-embed-dim-subtransformer = 48 is not in the search space"),
        ("REFERENCE_WITHOUT_SCALE", "'reference' (a subnet name) and 'reference_ms' come together"),
        ("REFERENCE_SCALE_ZERO", "reference_ms = 0 must be a positive number"),
    ],
)
def test_malformed_line_stops_with_its_line_number_or_is_skipped(tmp_path, space, caplog, bad_line, reason):
    path = tmp_path / "lat.jsonl"
    _write_records(path, space, 2)
    good = json.loads(path.read_text().splitlines()[0])
    if bad_line.startswith("SUBNET_WITH_LATENCY"):
        bad_line = json.dumps({**good, "latency_ms": -2})
    elif bad_line == "OUTSIDE_SPACE":
        bad_line = json.dumps({**good, "subnet": {**good["subnet"], "encoder-embed-dim-subtransformer": 48}})
    elif bad_line == "REFERENCE_WITHOUT_SCALE":
        bad_line = json.dumps({**good, "reference": "smallest"})
    elif bad_line == "REFERENCE_SCALE_ZERO":
        bad_line = json.dumps({**good, "reference": "smallest", "reference_ms": 0})
    with open(path, "a") as handle:
        handle.write(bad_line + "\n")
    _write_records(path, space, 1, seed=1)

    with pytest.raises(LatencyDataError) as error:
        read_latency_records(path, space, on_error="stop")
    message = str(error.value)
    assert message.startswith(f"{path}:3") and reason in message and "\n" not in message

    with caplog.at_level("WARNING"):
        records = read_latency_records(path, space, on_error="skip")
    assert [r.latency_ms for r in records] == [10.0, 11.0, 10.0]
    assert f"{path}:3" in caplog.text


def test_append_after_a_torn_last_line_keeps_the_new_record_whole(tmp_path, space):
    path = tmp_path / "lat.jsonl"
    _write_records(path, space, 1)
    with open(path, "a") as handle:
        handle.write('{"subnet": {"encoder-embed')  # a crash mid-write
    _write_records(path, space, 1, seed=1)
    with pytest.raises(LatencyDataError, match=r"lat.jsonl:2: not valid JSON"):
        read_latency_records(path, space)
    assert [r.latency_ms for r in read_latency_records(path, space, on_error="skip")] == [10.0, 10.0]


def test_empty_dataset_is_an_error(tmp_path, space):
    path = tmp_path / "lat.jsonl"
    path.write_text("\n")
    with pytest.raises(LatencyDataError, match="has no records"):
        read_latency_records(path, space)
    path.write_text("not json\n")
    with pytest.raises(LatencyDataError, match=r"has no records \(1 malformed lines skipped\)"):
        read_latency_records(path, space, on_error="skip")
    with pytest.raises(LatencyDataError, match="does not exist"):
        read_latency_records(tmp_path / "missing.jsonl", space)


def test_hidden_dims_are_validated():
    assert parse_hidden_dims("400,400,400") == [400, 400, 400]
    with pytest.raises(ValueError, match="--hidden-dims"):
        parse_hidden_dims("400,,0")


def test_predictor_refuses_a_model_of_another_space(space):
    other = SearchSpace.from_dict(
        {**yaml.safe_load(TINY.read_text()), "name": "tiny2"}, name_hint="tiny2"
    )
    assert other.fingerprint() == space.fingerprint()  # renaming keeps the identity
    raw = yaml.safe_load(TINY.read_text())
    raw["decoder"]["layer-num"] = [1, 2, 3]
    raw["decoder"]["kernel-sizes"] = [3, 5, 7]
    raw["name"] = "bigger"
    bigger = SearchSpace.from_dict(raw, name_hint="bigger")
    model = LatencyMLP(feature_layout(space).dim, [8], 5.0, 2.0, space.fingerprint())
    with pytest.raises(SpaceError, match="trained for another search space than bigger"):
        LatencyPredictor(model, bigger)


def test_kendall_tau_is_over_the_whole_valid_set_not_per_batch():
    rng = np.random.default_rng(0)
    true = rng.uniform(5, 50, size=70)
    pred = true + rng.normal(0, 8, size=70)
    batches = [slice(0, 32), slice(32, 64), slice(64, 70)]
    with metrics.aggregate(new_root=True) as agg:
        for part in batches:  # fairseq reduces validation metrics one batch at a time
            n = len(true[part])
            log = {
                "loss": 0.0, "sq_err_ms": float(((pred[part] - true[part]) ** 2).sum()),
                "abs_pct_err": float((abs(pred[part] - true[part]) / true[part]).sum() * 100),
                "sample_size": n, "nsentences": n, "ntokens": n,
                "pred_ms": torch.tensor(pred[part]), "true_ms": torch.tensor(true[part]),
            }
            with metrics.aggregate():
                LatencyPredictorCriterion.reduce_metrics([log])
        values = agg.get_smoothed_values()
    assert values["kendall_tau"] == pytest.approx(kendalltau(pred, true).statistic, abs=1e-4)
    assert values["rmse_ms"] == pytest.approx(np.sqrt(((pred - true) ** 2).mean()), abs=1e-3)
    assert values["mape"] == pytest.approx((abs(pred - true) / true).mean() * 100, abs=1e-2)
