"""``shiftadd-score CKPT DATA [SUBSET]``: score a retrained subnet as papers do.

Runs ``fairseq-generate`` with beam 4 and length penalty 0.6 on the sentencepiece-encoded data
and prints two BLEU scores of the same hypotheses:

* tokenized, compound-split BLEU, the Vaswani / HAT protocol: both sides tokenized (sacreBLEU's
  13a tokenizer), hyphens split as ``a ##AT##-##AT## b`` like fairseq's compound_split_bleu.sh,
  then corpus BLEU over those tokens;
* sacreBLEU on the detokenized text, with its signature, for comparison across papers.

The last line is one JSON object with both scores and the subnet's energy and parameters (from
the subnet stored in the checkpoint). The subset is ``valid`` unless named: ``test`` is for the
final report only, never for choosing a checkpoint (retraining selects on validation).
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from ..data.sized_dictionary import data_vocab_size
from ..hardware.costing import SubnetCoster
from ..hardware.energy_table import UNIT_ENERGY_PJ
from ..models.shiftadd_transformer import ShiftAddTransformer
from ..space import Subnet, load_subnet_file
from .average import load_checkpoint
from ..errors import InvalidInput, MissingInput, UserError, user_errors_to_exit
from .common import USER_DIR

_HYPHEN = re.compile(r"(\S)-(\S)")


def compound_split(line: str) -> str:
    """'a-b-c d-e' -> 'a ##AT##-##AT## b-c d ##AT##-##AT## e' (non-overlapping, as the perl rule)."""
    return _HYPHEN.sub(r"\1 ##AT##-##AT## \2", line)


def tokenized_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU over 13a tokens after compound splitting (no further tokenization)."""
    tokenize = Tokenizer13a()
    hyps = [compound_split(tokenize(line)) for line in hypotheses]
    refs = [compound_split(tokenize(line)) for line in references]
    return BLEU(tokenize="none", force=True).corpus_score(hyps, [refs]).score


def sacrebleu(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, str]:
    """sacreBLEU (13a) on detokenized text and its signature."""
    metric = BLEU()
    score = metric.corpus_score(list(hypotheses), [list(references)]).score
    return score, str(metric.get_signature())


def parse_generate(output: str) -> tuple[list[str], list[str]]:
    """(hypotheses, references) in sample order from fairseq-generate's D- and T- lines."""
    hyps: dict[int, str] = {}
    refs: dict[int, str] = {}
    for line in output.splitlines():
        kind, _, rest = line.partition("-")
        if kind not in ("D", "T") or "\t" not in rest:
            continue
        index, *fields = rest.split("\t")
        if not index.isdigit():
            continue
        (hyps if kind == "D" else refs)[int(index)] = fields[-1]
    if not hyps or hyps.keys() != refs.keys():
        raise ValueError(f"fairseq-generate printed {len(hyps)} hypotheses for {len(refs)} references")
    order = sorted(hyps)
    return [hyps[i] for i in order], [refs[i] for i in order]


def checkpoint_subnet(path: str) -> Subnet:
    """The subnet a standalone checkpoint decodes with, read as the model itself reads it
    (``cfg.model.subnet_config``, else the ``--subnet`` file it was trained with)."""
    model_cfg = (load_checkpoint(path).get("cfg") or {}).get("model") or {}
    try:
        return ShiftAddTransformer.checkpoint_subnet(model_cfg)
    except UserError as err:
        raise InvalidInput(f"{path}: {err}") from None


def checkpoint_bits(path: str) -> int:
    """The operand width a checkpoint's model runs at: its ``--quant-bits``, else 32 (float)."""
    model_cfg = (load_checkpoint(path).get("cfg") or {}).get("model") or {}
    fields = model_cfg if isinstance(model_cfg, dict) else vars(model_cfg)
    bits = fields.get("quant_bits") or 32
    if bits not in UNIT_ENERGY_PJ:
        raise InvalidInput(f"{path}: no unit energies for {bits}-bit operands (the table has {sorted(UNIT_ENERGY_PJ)}); pass --bits")
    return bits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftadd-score", description=__doc__.split("\n\n")[0],
        epilog="Other options go to fairseq-generate unchanged (e.g. --cpu, --max-tokens 2048).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("checkpoint", help="retrained subnet checkpoint")
    parser.add_argument("data", help="binarized data directory")
    parser.add_argument("subset", nargs="?", default="valid", help="split to score (test only for the final report)")
    parser.add_argument("--bits", type=int, choices=(8, 32), help="precision of the energy model (default: the checkpoint's --quant-bits, else 32)")
    parser.add_argument("--hardware", choices=("opcount", "accelerator"), default="opcount", help="energy model")
    parser.add_argument("--tokens", type=int, default=30, help="sequence length of the energy model")
    parser.add_argument("--max-tokens", type=int, default=4096, help="tokens per generation batch")
    parser.add_argument("--subnet", help="cost this subnet YAML (for a checkpoint of another model, e.g. fairseq's transformer)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show fairseq-generate's log (kept back unless it fails)")
    return parser


def generate_command(args: argparse.Namespace, extra: Sequence[str]) -> list[str]:
    """beam 4, length penalty 0.6; every sentence scored (fairseq otherwise rounds batches to multiples of 8
    and silently drops the remainder); sentencepiece pieces joined when the data was encoded with it."""
    pieces = ["--remove-bpe", "sentencepiece"] if (Path(args.data) / "spm.model").is_file() else []
    return [
        sys.executable, "-m", "fairseq_cli.generate", args.data, "--user-dir", USER_DIR,
        "--path", args.checkpoint, "--gen-subset", args.subset, "--beam", "4", "--lenpen", "0.6",
        *pieces, "--max-tokens", str(args.max_tokens), "--required-batch-size-multiple", "1", *extra,
    ]


@user_errors_to_exit
def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if not Path(args.data).is_dir():
        raise MissingInput(f"data directory {args.data} does not exist")
    subnet = load_subnet_file(args.subnet) if args.subnet else checkpoint_subnet(args.checkpoint)
    args.bits = args.bits or checkpoint_bits(args.checkpoint)
    coster = SubnetCoster(None, vocab_size=data_vocab_size(args.data))
    if args.subset == "test":
        print("score: scoring test: report this number; never choose a model by it", file=sys.stderr)
    command = generate_command(args, extra)
    print("+ " + shlex.join(command), file=sys.stderr, flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=None if args.verbose else subprocess.PIPE, text=True)
    if result.returncode:
        print(result.stderr or "", end="", file=sys.stderr)
        return result.returncode
    log = Path(f"{args.checkpoint}.{args.subset}.generate.txt")
    log.write_text(result.stdout)
    hypotheses, references = parse_generate(result.stdout)
    bleu_tok = tokenized_bleu(hypotheses, references)
    sacre, signature = sacrebleu(hypotheses, references)
    print(f"BLEU tokenized, compound-split (Vaswani/HAT protocol), {args.subset}, {len(hypotheses)} sentences: {bleu_tok:.2f}")
    print(f"sacreBLEU {args.subset}: {sacre:.2f} ({signature})")
    print(json.dumps({
        "bleu_tok": round(bleu_tok, 2),
        "sacrebleu": round(sacre, 2),
        "signature": signature,
        "energy_mj": coster.energy_mj(subnet, bits=args.bits, tokens=args.tokens, hardware=args.hardware),
        "params": coster.params(subnet),
        "subset": args.subset,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
