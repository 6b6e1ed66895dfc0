"""8-bit fixed point: the training-step overhead of fake quantisation, and the Multi30k float vs 8-bit runs.

``--overhead`` (default): one subnet built twice, float and ``--quant-bits 8``, with the same
weights; forward + backward on the same synthetic batches, the two models interleaved call by
call, median of ``--repeats`` after one warm-up. Prints the 8-bit / float time ratio.

``--multi30k --model NAME FLOAT_CKPT SUBNET_YAML ...``: each float checkpoint (copied to WORK/NAME/float.pt,
so the run it came from may go on) is fine-tuned ``--finetune-updates`` updates with ``--quant-bits 8``
and, as the control at equal updates, in float (fairseq's ``--finetune-from-model``: weights only,
fresh optimizer and schedule; the runs resume from their checkpoint_last.pt). The float checkpoint and
the float control are also calibrated to 8 bits without changing a weight (post-training quantisation:
``--quant-bits 8 --lr 0``, ``--calibration-batches`` training batches set the running input ranges;
docs/quantization.md). All five are scored (sacreBLEU on test_2016_flickr of checkpoint_best.pt,
selected on validation) and costed, 8-bit at 8 bits: WORK/quantization.md and .json. Hours of CPU;
see BENCHMARKS.md.

    .venv/bin/python bench/quantization.py --multi30k --work /work/m30k-quant \\
        --model subnet /work/m30k-ladder/subnet/checkpoint_best.pt /work/m30k-ladder/subnets/subnet.yml \\
        --model hybrid-50 /work/m30k-ladder/hybrid-50/checkpoint_best.pt /work/m30k-ladder/search-hybrid/best.yml
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size
from fairseq_shiftadd.models.shiftadd_transformer import ShiftAddTransformer, ShiftAddTransformerConfig
from fairseq_shiftadd.space import load_subnet_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
BASELINE_SUBNET = Path(__file__).resolve().parents[1] / "configs/subnets/multi30k-baseline.yml"


def build(subnet_yaml: str, vocab: int, quant_bits: int | None) -> ShiftAddTransformer:
    dictionary = dictionary_of_size(vocab)
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    torch.manual_seed(0)
    cfg = ShiftAddTransformerConfig(subnet_config=subnet_yaml, quant_bits=quant_bits)
    return ShiftAddTransformer.build_model(cfg, task).train()


def step(model: ShiftAddTransformer, batch: dict) -> float:
    start = time.perf_counter()
    logits, _ = model(batch["src"], batch["lengths"], batch["prev"])
    F.cross_entropy(logits.flatten(0, 1), batch["target"].flatten()).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def overhead(args: argparse.Namespace) -> None:
    subnet_yaml = load_subnet_file(args.subnet).to_yaml()
    models = {"float": build(subnet_yaml, args.vocab, None), "8-bit": build(subnet_yaml, args.vocab, 8)}
    gen = torch.Generator().manual_seed(1)

    def batch() -> dict:
        tokens = lambda: torch.randint(4, args.vocab, (args.sentences, args.length), generator=gen)
        return {"src": tokens(), "lengths": torch.full((args.sentences,), args.length), "prev": tokens(), "target": tokens()}

    batches = [batch() for _ in range(args.repeats + 1)]
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for i, b in enumerate(batches):
        for name, model in models.items():
            elapsed = step(model, b)
            if i:  # the first batch warms up
                seconds[name].append(elapsed)
    median = {name: statistics.median(times) for name, times in seconds.items()}
    print(f"subnet {args.subnet}, {args.sentences} x {args.length} tokens, {torch.get_num_threads()} threads, median of {args.repeats}")
    for name, value in median.items():
        print(f"  {name:>6}: {value * 1e3:8.1f} ms / training step")
    print(f"  8-bit / float: {median['8-bit'] / median['float']:.2f}x")


def multi30k(args: argparse.Namespace) -> None:
    """Fine-tune every ``--model`` to 8 bits and, as the control at equal updates, in float; calibrate both to 8 bits; score all five."""
    from quality_ladder import trained_updates
    from quality_multi30k import BIN, multi30k_recipe, scored_once, side_by_side

    from fairseq_shiftadd.data.sized_dictionary import data_vocab_size
    from fairseq_shiftadd.hardware.costing import SubnetCoster

    work, data = Path(args.work), Path(args.data)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    models = {}
    for name, checkpoint, subnet in args.model:
        frozen = work / name / "float.pt"  # a copy: the run it came from may go on training
        if not frozen.is_file():
            frozen.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(checkpoint, frozen)
        models[name] = (frozen, Path(subnet).resolve())

    def started_from(source: Path, subnet: Path, *options) -> list:
        """fairseq-train of the standalone ``subnet`` from the weights of ``source`` (fresh optimizer and schedule)."""
        return [BIN / "fairseq-train", data, "--user-dir", "fairseq_shiftadd", "--arch", "shiftadd_transformer",
                "--subnet", subnet, "--finetune-from-model", source, *options]

    jobs = {}
    for name, (frozen, subnet) in models.items():
        for run, bits in ((f"{name}/float-ft", []), (f"{name}/q8", ["--quant-bits", "8"])):
            save = work / run
            if trained_updates(save) < args.finetune_updates:
                jobs[run.replace("/", "-")] = started_from(
                    frozen, subnet, *bits,
                    *multi30k_recipe(save, ["--max-update", str(args.finetune_updates), "--validate-interval-updates", "50",
                                            "--save-interval-updates", "50", "--keep-interval-updates", "1"], args.warmup),
                    "--lr", str(args.lr),
                )
    side_by_side(jobs, logs, args.at_once, append=True)
    calibrations = {}
    for name, (frozen, subnet) in models.items():
        for run, source in ((f"{name}/q8-calibrated", frozen), (f"{name}/float-ft-q8-calibrated", work / name / "float-ft/checkpoint_best.pt")):
            save = work / run
            if trained_updates(save) < args.calibration_batches:
                calibrations[run.replace("/", "-")] = started_from(
                    source, subnet, "--quant-bits", "8", *multi30k_recipe(save, ["--max-update", str(args.calibration_batches)]),
                    "--lr", "0", "--lr-scheduler", "fixed",
                )
    side_by_side(calibrations, logs, args.at_once, append=True)

    coster = SubnetCoster(None, vocab_size=data_vocab_size(data))
    baseline = coster.energy_mj(load_subnet_file(str(BASELINE_SUBNET)), bits=32)
    rows = []
    for name, (frozen, subnet) in models.items():
        layout = load_subnet_file(str(subnet))
        for label, run, bits, updates in (
            ("float", "float", 32, 0), ("float, fine-tuned", "float-ft", 32, args.finetune_updates),
            ("8-bit, fine-tuned", "q8", 8, args.finetune_updates),
            ("8-bit, calibrated", "q8-calibrated", 8, 0),
            ("8-bit, float fine-tuned then calibrated", "float-ft-q8-calibrated", 8, args.finetune_updates),
        ):
            checkpoint = frozen if run == "float" else work / name / run / "checkpoint_best.pt"
            scored = scored_once(checkpoint, data, subnet, logs / f"score-{name}-{run}.log")
            energy = coster.energy_mj(layout, bits=bits)
            rows.append({
                "model": name, "precision": label, "finetune_updates": updates, "sacrebleu": scored["sacrebleu"],
                "energy_mj": energy, "accelerator_mj": coster.energy_mj(layout, bits=bits, hardware="accelerator"),
                "energy_vs_float_baseline": energy / baseline, "signature": scored["signature"],
            })
    (work / "quantization.json").write_text(json.dumps(rows, indent=1))
    lines = ["| model | precision | fine-tuning updates | sacreBLEU | op-count energy mJ | vs float baseline | accelerator mJ |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['precision']} | {r['finetune_updates']} | {r['sacrebleu']:.2f} | {r['energy_mj']:.4f} | "
              f"{100 * r['energy_vs_float_baseline']:.1f}% | {r['accelerator_mj']:.3f} |" for r in rows]
    lines.append(f"\nsacreBLEU signature: {rows[0]['signature']}")
    (work / "quantization.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subnet", default="configs/subnets/multi30k-baseline.yml", help="subnet YAML to time")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--sentences", type=int, default=32)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--multi30k", action="store_true", help="the Multi30k float vs 8-bit fine-tuning and scores (hours)")
    parser.add_argument("--model", nargs=3, action="append", default=[], metavar=("NAME", "FLOAT_CKPT", "SUBNET_YAML"),
                        help="with --multi30k: a float shiftadd_transformer checkpoint and its subnet (repeat the option)")
    parser.add_argument("--data", default="/work/m30k-ladder/multi30k/data-bin", help="binarized Multi30k (bench/quality_ladder.py prepares it)")
    parser.add_argument("--work", default="/work/m30k-quant", help="work directory of --multi30k (keep it outside the repository)")
    parser.add_argument("--finetune-updates", type=int, default=200, help="updates of each fine-tuning (8-bit and float control)")
    parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate of the fine-tunings")
    parser.add_argument("--warmup", type=int, default=50, help="learning-rate warm-up updates of the fine-tunings")
    parser.add_argument("--calibration-batches", type=int, default=30,
                        help="training batches that calibrate the 8-bit input ranges of a float model (no weight changes)")
    parser.add_argument("--at-once", type=int, default=2, help="fine-tunings at a time, one thread each (cores)")
    args = parser.parse_args()
    if args.multi30k:
        if not args.model:
            parser.error("--multi30k needs at least one --model NAME FLOAT_CKPT SUBNET_YAML")
        for name, checkpoint, subnet in args.model:
            for path in (checkpoint, subnet):
                if not Path(path).is_file():
                    parser.error(f"--model {name}: {path} does not exist")
        multi30k(args)
    else:
        overhead(args)


if __name__ == "__main__":
    main()
