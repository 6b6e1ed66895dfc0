"""Benchmark supernet training throughput against fairseq's own ``transformer``.

    python bench/supernet.py --data DATA_BIN [--steps 60] [--wmt-steps 4]

Throughput: real fairseq training steps (``fairseq.trainer.Trainer.train_step``: forward, backward,
Adam step), built from command lines through fairseq's option parser, task and model APIs. The
supernet trains one random subnet per update (``--task shiftadd_supernet_translation``); the
baseline is ``--arch transformer`` at the supernet's largest sizes. Every trainer gets the same
batches, and the trainers are interleaved step by step (A1 B1 A2 B2 ...) so machine load hits
them alike. Throughput is target tokens / summed step time after ``--warmup`` untimed steps.

- tiny space: the toy corpus in DATA_BIN (``--max-tokens`` batches), every ``--weight-sharing`` mode.
- wmt14.en-de space (``--wmt-steps`` > 0): synthetic batches (``--wmt-sentences`` random sentences
  of 30 tokens, 32k joined vocabulary), supernet (``--weight-sharing none``) vs Transformer at the
  largest size (1024/4096/16 heads, 6+6 layers). CPU: a handful of steps.

--device cuda runs the trainers on the GPU (each timed step ends with torch.cuda.synchronize()),
with fairseq's --fp16 or --amp under --precision.

Parameter counts: the supernet of each ``--weight-sharing`` mode built on the ``meta`` device
(shapes only), next to the same-size Transformer, embeddings included.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fairseq import options, tasks  # noqa: E402
from fairseq.data import LanguagePairDataset  # noqa: E402
from fairseq.dataclass.utils import convert_namespace_to_omegaconf  # noqa: E402
from fairseq.trainer import Trainer  # noqa: E402

from fairseq_shiftadd.data.sized_dictionary import data_vocab_size  # noqa: E402
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size  # noqa: E402
from fairseq_shiftadd.models.shiftadd_supernet import ShiftAddSupernet, ShiftAddSupernetConfig  # noqa: E402
from fairseq_shiftadd.recipes import translation_recipe  # noqa: E402
from fairseq_shiftadd.space import WEIGHT_SHARING_MODES, SearchSpace, Subnet  # noqa: E402

MODES = WEIGHT_SHARING_MODES
COMMON = [
    *translation_recipe("5e-4", 10),
    "--seed", "1", "--num-workers", "0", "--attention-dropout", "0.1",
]
PRECISION_FLAGS = {"fp32": [], "fp16": ["--fp16"], "amp": ["--amp"]}


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def device_flags(args: argparse.Namespace) -> list[str]:
    """fairseq-train flags for --device and --precision (fairseq's --fp16 and --amp need CUDA)."""
    return ["--cpu"] if args.device == "cpu" else PRECISION_FLAGS[args.precision]


def transformer_args(largest: Subnet) -> list[str]:
    """fairseq ``transformer`` flags for the sizes of a subnet (shared embeddings, like the supernet)."""
    heads = largest.encoder_self_attention_heads[0], largest.decoder_self_attention_heads[0]
    return [
        "--arch", "transformer", "--share-all-embeddings",
        "--encoder-embed-dim", str(largest.encoder_embed_dim), "--decoder-embed-dim", str(largest.decoder_embed_dim),
        "--encoder-ffn-embed-dim", str(max(largest.encoder_ffn_embed_dim)),
        "--decoder-ffn-embed-dim", str(max(largest.decoder_ffn_embed_dim)),
        "--encoder-layers", str(largest.encoder_layer_num), "--decoder-layers", str(largest.decoder_layer_num),
        "--encoder-attention-heads", str(heads[0]), "--decoder-attention-heads", str(heads[1]),
    ]


def supernet_args(space_file: str, arch: str, mode: str) -> list[str]:
    return [
        "--user-dir", str(ROOT / "fairseq_shiftadd"), "--task", "shiftadd_supernet_translation",
        "--search-space", space_file, "--arch", arch, "--weight-sharing", mode,
    ]


def build_trainer(argv: list[str]) -> Trainer:
    """A fairseq Trainer from a fairseq-train command line (no data is loaded)."""
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return Trainer(cfg, task, model, task.build_criterion(cfg.criterion))


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def interleaved_throughput(trainers: dict[str, Trainer], batches: list[dict], warmup: int) -> dict[str, list[float]]:
    """Seconds of every timed step of each trainer over the same batches, steps interleaved."""
    seconds: dict[str, list[float]] = {name: [] for name in trainers}
    for step, batch in enumerate(batches):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_step([batch])
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if step >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def report(title: str, seconds: dict[str, list[float]], batches: list[dict], baseline: str) -> None:
    """Tokens/s over all timed steps, and the median over steps of the per-step time ratio to the
    baseline on the same batch (robust to a step that lost its core to another job)."""
    tokens = sum(batch["ntokens"] for batch in batches[len(batches) - len(seconds[baseline]):])
    print(f"\n{title}; {load()}")
    print("| model | target tokens/s | vs transformer (total) | vs transformer (median per-step ratio) |")
    print("|---|---|---|---|")
    for name, steps in seconds.items():
        ratio = statistics.median(b / s for s, b in zip(steps, seconds[baseline]))
        print(f"| {name} | {tokens / sum(steps):.0f} | {sum(seconds[baseline]) / sum(steps):.2f}x | {ratio:.2f}x |")


def toy_batches(trainer: Trainer, count: int, max_tokens: int) -> list[dict]:
    """``count`` training batches of the toy corpus, in fairseq's shuffled order, cycling epochs."""
    task = trainer.task
    task.load_dataset("train")
    batches: list[dict] = []
    epoch = 1
    while len(batches) < count:
        iterator = task.get_batch_iterator(
            task.dataset("train"), max_tokens=max_tokens, max_positions=(1024, 1024), seed=1, epoch=epoch,
        ).next_epoch_itr(shuffle=True)
        batches += list(iterator)[: count - len(batches)]
        epoch += 1
    return batches


def bench_tiny(args: argparse.Namespace) -> None:
    space_file = str(ROOT / "configs/spaces/tiny.yml")
    largest = SearchSpace.from_file(space_file).largest()
    common = [args.data, *COMMON, *device_flags(args), "--max-tokens", str(args.max_tokens), "--dropout", "0.1"]
    trainers = {"transformer (largest size)": build_trainer([*common, *transformer_args(largest)])}
    for mode in MODES:
        trainers[f"supernet, random subnet, --weight-sharing {mode}"] = build_trainer(
            [*common, *supernet_args(space_file, "shiftadd_supernet_tiny", mode)]
        )
    batches = toy_batches(trainers["transformer (largest size)"], args.steps + args.warmup, args.max_tokens)
    mean_tokens = sum(b["ntokens"] for b in batches) / len(batches)
    print(f"\ntiny space, toy corpus: {args.steps} timed steps (+{args.warmup} warm-up), "
          f"{mean_tokens:.0f} target tokens per batch; params: "
          + ", ".join(f"{name.split(',')[-1].strip()} {params(t.model):,}" for name, t in trainers.items()), flush=True)
    report("tiny space (toy corpus)", interleaved_throughput(trainers, batches, args.warmup), batches, "transformer (largest size)")


def synthetic_batches(dictionary, count: int, sentences: int, length: int = 30) -> list[dict]:
    """Random sentences of ``length`` tokens (EOS included), collated by fairseq's LanguagePairDataset."""
    generator = torch.Generator().manual_seed(1)

    def sentence() -> torch.Tensor:
        tokens = torch.randint(dictionary.nspecial, len(dictionary), (length,), generator=generator)
        tokens[-1] = dictionary.eos()
        return tokens

    batches = []
    for _ in range(count):
        src, tgt = [sentence() for _ in range(sentences)], [sentence() for _ in range(sentences)]
        dataset = LanguagePairDataset(src, [length] * sentences, dictionary, tgt, [length] * sentences, dictionary)
        batches.append(dataset.collater([dataset[i] for i in range(sentences)]))
    return batches


def bench_wmt(args: argparse.Namespace) -> None:
    space_file = str(ROOT / "configs/spaces/wmt14.en-de.yml")
    largest = SearchSpace.from_file(space_file).largest()
    with tempfile.TemporaryDirectory() as data:
        dictionary = dictionary_of_size(args.vocab_size)
        for lang in ("en", "de"):
            dictionary.save(os.path.join(data, f"dict.{lang}.txt"))
        common = [data, "--source-lang", "en", "--target-lang", "de", *COMMON, *device_flags(args), "--dropout", "0.3"]
        trainers = {
            "transformer (largest size)": build_trainer([*common, *transformer_args(largest)]),
            "supernet, random subnet, --weight-sharing none": build_trainer(
                [*common, *supernet_args(space_file, "shiftadd_supernet_wmt_en_de", "none")]
            ),
        }
        dictionary = trainers["transformer (largest size)"].task.target_dictionary
        batches = synthetic_batches(dictionary, args.wmt_steps + 1, args.wmt_sentences)
        print(f"\nwmt14.en-de space, synthetic batches of {args.wmt_sentences}x30 tokens, {args.wmt_steps} timed steps "
              f"(+1 warm-up), vocab {len(dictionary)}", flush=True)
        report("wmt14.en-de space (synthetic batches)", interleaved_throughput(trainers, batches, 1), batches, "transformer (largest size)")


def param_table(vocab_sizes: dict[str, int]) -> None:
    print("\nParameters (embeddings included; supernets built on the meta device)")
    print("| space | vocab | transformer (largest size) | supernet none | supernet plain | supernet heterogeneous |")
    print("|---|---|---|---|---|---|")
    for name, vocab in vocab_sizes.items():
        space = SearchSpace.from_file(ROOT / f"configs/spaces/{name}.yml")
        dictionary = dictionary_of_size(vocab)
        task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary, space=space)
        counts = []
        with torch.device("meta"):
            for mode in MODES:
                counts.append(params(ShiftAddSupernet.build_model(ShiftAddSupernetConfig(weight_sharing=mode), task)))
        baseline = transformer_params(space.largest(), vocab)
        print(f"| {name} | {vocab} | {baseline / 1e6:.2f}M | "
              + " | ".join(f"{c / 1e6:.2f}M ({c / baseline:.2f}x)" for c in counts) + " |")


def transformer_params(largest: Subnet, vocab: int) -> int:
    """Params of fairseq's ``transformer`` at the largest sizes, built on the meta device."""
    with tempfile.TemporaryDirectory() as data:
        dictionary_of_size(vocab).save(os.path.join(data, "dict.en.txt"))
        dictionary_of_size(vocab).save(os.path.join(data, "dict.de.txt"))
        argv = [data, "--source-lang", "en", "--target-lang", "de", *COMMON, "--cpu", *transformer_args(largest)]
        cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
        task = tasks.setup_task(cfg.task)
        with torch.device("meta"):
            return params(task.build_model(cfg.model))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="binarized toy corpus (joined dictionary)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per trainer, tiny space (0: skip)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per trainer, tiny space")
    parser.add_argument("--max-tokens", type=int, default=1500)
    parser.add_argument("--wmt-steps", type=int, default=0, help="timed steps per trainer, wmt14.en-de (0: skip)")
    parser.add_argument("--wmt-sentences", type=int, default=8, help="sentences per synthetic WMT batch")
    parser.add_argument("--vocab-size", type=int, default=32000, help="joined vocabulary of the WMT runs and counts")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the trainers run")
    parser.add_argument("--precision", choices=sorted(PRECISION_FLAGS), default="fp32",
                        help="fairseq's --fp16 or --amp for every trainer (cuda only)")
    args = parser.parse_args()
    if args.device == "cpu" and args.precision != "fp32":
        parser.error(f"--precision {args.precision} needs --device cuda (fairseq's --fp16 and --amp assert CUDA)")
    logging.disable(logging.INFO)  # fairseq's and hydra's set-up chatter; the tables are the output
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, {args.precision}; {load()}")
    param_table({"tiny": data_vocab_size(args.data), "wmt14.en-de": args.vocab_size})
    if args.steps:
        bench_tiny(args)
    if args.wmt_steps:
        bench_wmt(args)
    print(f"\ndone; {load()}")


if __name__ == "__main__":
    main()
