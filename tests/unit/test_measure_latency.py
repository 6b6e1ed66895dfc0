"""Measured latency: what is timed (eval, no autograd, HAT's shapes), the statistic, and the resumable dataset CLI."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from fairseq_shiftadd.cli.measure_latency import main
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size
from fairseq_shiftadd.hardware.latency_dataset import planned_subnets, read_latency_records
from fairseq_shiftadd.hardware import latency as latency_module
from fairseq_shiftadd.hardware.latency import measure_latency, pinned_threads, trimmed_mean
from fairseq_shiftadd.models.shiftadd_transformer import ShiftAddTransformer, ShiftAddTransformerConfig
from fairseq_shiftadd.space import SearchSpace, Subnet

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "spaces" / "tiny.yml"
FAST = ["--device", "cpu", "--threads", "1", "--vocab-size", "50", "--src-len", "4", "--tgt-len", "3", "--runs", "1", "--warmup", "0"]


def build(subnet: Subnet, vocab: int = 50) -> ShiftAddTransformer:
    dictionary = dictionary_of_size(vocab)
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    return ShiftAddTransformer.build_model(ShiftAddTransformerConfig(subnet_config=subnet.to_yaml()), task)


def single_op_space(embed: list[int], layers: list[int], ffn: list[int], heads: list[int]) -> SearchSpace:
    side = {"embed-dim": embed, "layer-num": layers, "ffn-embed-dim": ffn, "self-attention-heads": heads,
            "block-types": ["attn"], "ffn-types": ["mult"], "kernel-sizes": [3] * max(layers)}
    decoder = dict(side, **{"ende-attention-heads": heads, "arbitrary-ende-attn": [-1]})
    return SearchSpace.from_dict({"name": "sizes", "encoder": side, "decoder": decoder})


def test_times_encoder_once_then_beam_steps_in_eval_without_autograd() -> None:
    space = SearchSpace.from_file(TINY)
    model = build(space.representative_hybrid())
    model.train()
    calls: list[tuple] = []

    def spy(name):
        def hook(module, args, kwargs, output):
            tokens = args[0]
            encoder_out = kwargs.get("encoder_out")
            beam = encoder_out["encoder_out"][0].shape[1] if encoder_out else None
            calls.append((name, tuple(tokens.shape), beam, kwargs.get("incremental_state") is not None))
        return hook

    modes = []
    for module in model.modules():
        module.register_forward_hook(lambda m, i, o: modes.append((m.training, torch.is_grad_enabled(), torch.is_inference_mode_enabled())))
    model.encoder.register_forward_hook(spy("encoder"), with_kwargs=True)
    model.decoder.register_forward_hook(spy("decoder"), with_kwargs=True)

    result = measure_latency(model, src_len=7, tgt_len=5, beam=3, warmup=1, runs=2, device="cpu", threads=1)

    run = [("encoder", (1, 7), None, False)] + [("decoder", (3, t), 3, True) for t in range(1, 6)]
    assert calls == run * 3  # 1 warm-up + 2 timed runs
    assert len(modes) > 100 and set(modes) == {(False, False, True)}
    assert model.training  # the caller's mode is restored
    assert len(result["samples_ms"]) == 2 and result["latency_ms"] > 0
    assert result["threads"] == 1 and result["torch"] == torch.__version__ and result["device"].startswith("cpu:")


def test_paired_timing_cancels_a_drifting_machine_speed(monkeypatch) -> None:
    """A scripted clock: the model costs 3 units, the reference 1, and the machine's speed changes
    between pairs by up to 2x. Direct timing reports the drift; paired timing the 3x exactly."""
    space = SearchSpace.from_file(TINY)
    model, reference = build(space.largest()), build(space.smallest())
    slowdown = iter([1.0, 1.0, 1.9, 1.9, 0.7, 0.7, 1.3, 1.3, 2.0, 2.0, 1.0, 1.0])  # one factor per pair of runs
    order = []

    def scripted(timed_model, inputs, device):
        order.append("model" if timed_model is model else "reference")
        return (3.0 if timed_model is model else 1.0) * next(slowdown)

    monkeypatch.setattr(latency_module, "_timed_translation", scripted)
    result = measure_latency(model, warmup=1, runs=5, device="cpu", reference=reference, reference_ms=10.0)
    assert order == ["model", "reference"] * 6  # the reference follows every run, warm-up included
    assert result["samples_ms"] == pytest.approx([5.7, 2.1, 3.9, 6.0, 3.0])  # direct timing: the drift
    assert result["ratio"] == pytest.approx(3.0) and result["latency_ms"] == pytest.approx(30.0)
    assert result["reference_ms"] == 10.0


def test_trimmed_mean_keeps_the_10_to_90_percent_range() -> None:
    samples = [float(v) for v in range(1, 21)]  # 20 runs: drop 2 lowest and 2 highest -> 3..18
    assert trimmed_mean(samples) == pytest.approx(sum(range(3, 19)) / 16)
    assert trimmed_mean(samples[:-1] + [1e6]) == pytest.approx(sum(range(3, 19)) / 16)
    assert trimmed_mean([5.0]) == 5.0
    with pytest.raises(ValueError, match="samples"):
        trimmed_mean([])


def test_threads_are_pinned_and_restored() -> None:
    before = torch.get_num_threads()
    with pinned_threads(1) as threads:
        assert threads == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with pinned_threads(0):
            pass


def test_latency_grows_with_model_size() -> None:
    space = single_op_space(embed=[512, 32], layers=[6, 1], ffn=[2048, 32], heads=[8, 2])
    times = {}
    for name, subnet in (("largest", space.largest()), ("smallest", space.smallest())):
        times[name] = measure_latency(build(subnet), src_len=10, tgt_len=10, beam=4, warmup=1, runs=3, device="cpu", threads=1)["latency_ms"]
    assert times["largest"] > 3 * times["smallest"], times


def test_bad_arguments_are_value_errors() -> None:
    model = build(SearchSpace.from_file(TINY).smallest())
    with pytest.raises(ValueError, match="beam"):
        measure_latency(model, beam=0, device="cpu")
    with pytest.raises(ValueError, match="device"):
        measure_latency(model, device="tpu")


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_writes_one_wellformed_row_per_distinct_subnet(tmp_path: Path) -> None:
    out = tmp_path / "lat.jsonl"
    assert main(["--search-space", str(TINY), "--out", str(out), "--num-subnets", "4", "--include-largest-smallest", *FAST]) == 0
    written = rows(out)
    space = SearchSpace.from_file(TINY)
    assert len(written) == 4
    for row in written:
        assert set(row) == {"subnet", "latency_ms", "device", "torch", "threads"}
        assert row["latency_ms"] > 0 and row["threads"] == 1 and row["torch"] == torch.__version__
        assert row["device"].startswith("cpu:")
    subnets = [space.subnet_from_dict(row["subnet"]) for row in written]
    assert subnets[:2] == [space.largest(), space.smallest()]
    assert len({s.key() for s in subnets}) == 4
    assert [r.subnet for r in read_latency_records(out, space)] == subnets


def test_resume_after_kill_measures_the_same_subnets_once(tmp_path: Path) -> None:
    whole, resumed = tmp_path / "whole.jsonl", tmp_path / "resumed.jsonl"
    common = ["--search-space", str(TINY), "--seed", "3", *FAST]
    assert main([*common, "--out", str(whole), "--num-subnets", "5"]) == 0
    assert main([*common, "--out", str(resumed), "--num-subnets", "2"]) == 0
    with open(resumed, "a") as handle:  # a kill in the middle of writing the third row
        handle.write('{"subnet": {"encoder-embed')
    assert main([*common, "--out", str(resumed), "--num-subnets", "5"]) == 0
    assert [r["subnet"] for r in rows(resumed)] == [r["subnet"] for r in rows(whole)]
    assert main([*common, "--out", str(resumed), "--num-subnets", "5"]) == 0
    assert len(rows(resumed)) == 5


def test_cli_refuses_to_mix_thread_counts_in_one_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "lat.jsonl"
    assert main(["--search-space", str(TINY), "--out", str(out), "--num-subnets", "1", *FAST]) == 0
    args = ["--search-space", str(TINY), "--out", str(out), "--num-subnets", "2", *FAST[:2], "--threads", "2", *FAST[4:]]
    assert main(args) == 2
    assert "with 1 threads; this run is on" in capsys.readouterr().err
    assert len(rows(out)) == 1


def test_cli_paired_timing_keeps_one_scale_per_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "lat.jsonl"
    common = ["--search-space", str(TINY), "--out", str(out), *FAST, "--reference", "smallest"]
    assert main([*common, "--num-subnets", "2"]) == 0
    assert main([*common, "--num-subnets", "4"]) == 0  # resumed: the scale is read back, not measured again
    written = rows(out)
    assert len(written) == 4 and {row["reference"] for row in written} == {"smallest"}
    assert len({row["reference_ms"] for row in written}) == 1 and written[0]["reference_ms"] > 0
    records = read_latency_records(out, SearchSpace.from_file(TINY))
    assert records[0].reference == "smallest" and records[0].reference_ms == written[0]["reference_ms"]

    assert main([*common, "--num-subnets", "5", "--reference-ms", "1.5"]) == 2
    assert "--reference-ms 1.5 differs from the" in capsys.readouterr().err
    assert main(["--search-space", str(TINY), "--out", str(out), *FAST, "--num-subnets", "5"]) == 2
    assert "timed with --reference smallest" in capsys.readouterr().err
    assert len(rows(out)) == 4

    pinned = tmp_path / "pinned.jsonl"
    assert main(["--search-space", str(TINY), "--out", str(pinned), *FAST, "--reference", "largest", "--reference-ms", "2.5",
                 "--num-subnets", "1"]) == 0
    assert rows(pinned)[0]["reference_ms"] == 2.5 and rows(pinned)[0]["reference"] == "largest"
    assert main(["--search-space", str(TINY), "--out", str(tmp_path / "x.jsonl"), *FAST, "--reference-ms", "2", "--num-subnets", "1"]) == 2
    assert "--reference-ms needs --reference" in capsys.readouterr().err


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["--search-space", str(TINY), "--out", str(tmp_path / "x.jsonl"), "--num-subnets", "0"]) == 2
    assert capsys.readouterr().err.strip().endswith("error: --num-subnets must be a positive integer, got 0")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert main(["--search-space", str(TINY), "--out", str(bad), "--num-subnets", "1", *FAST]) == 2
    assert f"{bad}:1: not valid JSON" in capsys.readouterr().err


def test_a_space_smaller_than_the_request_is_reported() -> None:
    space = single_op_space(embed=[32], layers=[1], ffn=[32], heads=[2])
    assert len(planned_subnets(space, 1, seed=0, include_extremes=False)) == 1
    with pytest.raises(ValueError, match="no more than 1 distinct subnets"):
        planned_subnets(space, 2, seed=0, include_extremes=False)
