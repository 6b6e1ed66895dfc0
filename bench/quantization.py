"""8-bit fixed point: the training-step overhead of fake quantisation, and the Multi30k float vs 8-bit runs.

``--overhead`` (default): one subnet built twice, float and ``--quant-bits 8``, with the same
weights; forward + backward on the same synthetic batches, the two models interleaved call by
call, median of ``--repeats`` after one warm-up. Prints the 8-bit / float time ratio.

``--print-multi30k-commands``: the fine-tuning and scoring commands of the Multi30k comparison
(float checkpoint -> ``--restore-file FLOAT.pt --quant-bits 8 --reset-optimizer`` -> shiftadd-score,
which prices a ``--quant-bits 8`` checkpoint at 8 bits). Hours of CPU each; see BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size
from fairseq_shiftadd.models.shiftadd_transformer import ShiftAddTransformer, ShiftAddTransformerConfig
from fairseq_shiftadd.space import load_subnet_file


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


MULTI30K_COMMANDS = """\
# data: {data}; FLOAT.pt: a float Multi30k checkpoint (baseline or searched hybrid, e.g. bench/quality_multi30k.py)
fairseq-train {data} --user-dir fairseq_shiftadd --arch shiftadd_transformer --subnet SUBNET.yml \\
    --restore-file FLOAT.pt --reset-optimizer --reset-dataloader --reset-meters --reset-lr-scheduler \\
    --quant-bits 8 --save-dir Q8 --optimizer adam --adam-betas '(0.9,0.98)' --lr 5e-4 \\
    --lr-scheduler inverse_sqrt --warmup-updates 500 --criterion label_smoothed_cross_entropy \\
    --label-smoothing 0.1 --max-tokens 4096 --max-update {updates} --cpu --seed 1 --no-epoch-checkpoints
shiftadd-score FLOAT.pt {data} test --cpu        # sacreBLEU, op-count energy at 32 bits
shiftadd-score FLOAT.pt {data} test --cpu --bits 8
shiftadd-score Q8/checkpoint_best.pt {data} test --cpu   # 8-bit: the checkpoint's --quant-bits
shiftadd-cost Q8/checkpoint_best.pt --hardware accelerator
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subnet", default="configs/subnets/multi30k-baseline.yml", help="subnet YAML to time")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--sentences", type=int, default=32)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--print-multi30k-commands", action="store_true")
    parser.add_argument("--data", default="/work/m30k-ladder/multi30k/data-bin")
    parser.add_argument("--updates", type=int, default=3000, help="fine-tuning updates")
    args = parser.parse_args()
    if args.print_multi30k_commands:
        print(MULTI30K_COMMANDS.format(data=args.data, updates=args.updates))
    else:
        overhead(args)


if __name__ == "__main__":
    main()
