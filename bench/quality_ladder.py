"""Where does a hybrid lose quality? A ladder of Multi30k models, all at the same number of updates.

Every row trains with one recipe (the baseline's, ``quality_multi30k.multi30k_recipe``) for ``--updates``
updates, one thread each, validation loss every 100 updates; runs resume from checkpoint_last.pt,
so a larger ``--updates`` extends them and an interrupted ladder continues where it stopped.

Rows (``--rows``, default all, in this order):

* ``baseline``: fairseq ``transformer`` (3+3 layers, d 256, FFN 512);
* ``subnet``: the same network as a ``shiftadd_transformer`` subnet (must match ``baseline``);
* ``ffn-shift`` / ``ffn-add``: the subnet with shift / add FFNs in every layer;
* ``enc-attn+add`` / ``enc-attn+shiftadd`` / ``enc-conv``: the subnet with those encoder blocks;
* ``hat-50``: the best multiplication-only subnet a search finds under 50% of the baseline's
  32-bit op-count energy (the HAT baseline: supernet and search on ``configs/spaces/multi30k-mult.yml``);
* ``hybrid-25`` / ``hybrid-50`` / ``hybrid-75``: the hybrid the search finds on
  ``configs/spaces/multi30k.yml`` under 25/50/75% of that energy.

Searched rows train a heterogeneous supernet first (``--supernet-updates``, sandwich sampling),
search on the first ``--valid-sentences`` validation sentences, then retrain from scratch. Scores
are sacreBLEU on test_2016_flickr of checkpoint_best.pt (selected on validation loss only).
Writes WORK/ladder.json, WORK/ladder.md (the table) and WORK/ladder_curves.png; a lever under test
(``--lever kd --extra --criterion word_distillation --teacher ...``) trains ROW+kd runs and writes
WORK/ladder+kd.*, the plain runs untouched. A supernet lever (``--supernet-lever inplace``: in-place
distillation, ``--criterion word_distillation --teacher largest``) trains its own supernets, searches
and searched rows, named NAME+inplace, and writes WORK/ladder+inplace.*; ``--supernet-lever warm`` starts
every supernet from WORK/supernet-mult (``--init-from-supernet``): the hybrid one from the weights it shares
with it, the multiplication-only one from all of them, its learning-rate schedule restarted as the hybrid's
is (HAT's equal), so each has that supernet's updates before its own. ``--subnet-file NAME=YAML``
adds a row NAME that trains the given subnet with the same recipe (no supernet, no search), e.g. a
searched subnet kept in ``configs/subnets/``. ``--seed N`` (other than the recipe's 1) trains every
row as RUN+seedN (supernets keep seed 1). ``--average-last N`` keeps each row's last N interval
checkpoints (100 updates apart) and scores their average too (WORK/RUN/checkpoint_avg_lastN.pt,
fairseq users' usual recipe), in a column next to the best checkpoint's. ``--inherit-from SUPERNET.pt``
starts every ``shiftadd_transformer`` row from its subnet's weights in that supernet
(``shiftadd-export-subnet``, then fairseq's ``--finetune-from-model``) instead of from scratch: the
fine-tuning lever, runs ROW+inherit.

    .venv/bin/python bench/quality_ladder.py --work /work/m30k-ladder --updates 1000
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_multi30k import BIN, EVOLUTION, REPO, cost, multi30k_recipe, prepared_data, pyplot, save_figure, scored_once, side_by_side  # noqa: E402

from fairseq_shiftadd.checkpoint_compat import load_weights_only  # noqa: E402
from fairseq_shiftadd.cli.average import INTERVAL_CHECKPOINT, average_checkpoints, last_checkpoints, write_checkpoint  # noqa: E402
from fairseq_shiftadd.cli.export_subnet import write_export  # noqa: E402
from fairseq_shiftadd.hardware.costing import SubnetCoster  # noqa: E402
from fairseq_shiftadd.errors import InvalidInput, UserError  # noqa: E402
from fairseq_shiftadd.space import load_subnet_file  # noqa: E402

BASELINE_SUBNET = REPO / "configs/subnets/multi30k-baseline.yml"
SPACES = {"hybrid": REPO / "configs/spaces/multi30k.yml", "mult": REPO / "configs/spaces/multi30k-mult.yml"}
LAYERS = 3


def same_in_every_layer(key: str, value: str, sides=("encoder", "decoder")) -> dict:
    return {f"{side}-{key}-all-subtransformer": [value] * LAYERS for side in sides}


# Fixed rows: changes to the baseline subnet's YAML keys.
FIXED_ROWS = {
    "subnet": {},
    "ffn-shift": same_in_every_layer("ffn-types", "shift"),
    "ffn-add": same_in_every_layer("ffn-types", "add"),
    "enc-attn+add": same_in_every_layer("block-types", "attn+add", ("encoder",)),
    "enc-attn+shiftadd": same_in_every_layer("block-types", "attn+shiftadd", ("encoder",)),
    "enc-conv": same_in_every_layer("block-types", "conv", ("encoder",)),
}
# Searched rows: (supernet / space, fraction of the baseline's 32-bit op-count energy).
SEARCHED_ROWS = {"hat-50": ("mult", 0.5), "hybrid-25": ("hybrid", 0.25), "hybrid-50": ("hybrid", 0.5), "hybrid-75": ("hybrid", 0.75)}
ROWS = ("baseline", *FIXED_ROWS, *SEARCHED_ROWS)
SUPERNET_LEVERS = ("inplace", "warm")
WARM_SOURCE = "supernet-mult/checkpoint_best.pt"  # under WORK: the supernet the warm lever starts the hybrid one from
VALIDATE_EVERY = 100
BASELINE_ARCH = [
    "--arch", "transformer", "--encoder-layers", "3", "--decoder-layers", "3", "--encoder-embed-dim", "256",
    "--decoder-embed-dim", "256", "--encoder-ffn-embed-dim", "512", "--decoder-ffn-embed-dim", "512",
    "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
]


def supernet_lever_options(lever: str | None, work: Path, space: str) -> list:
    """fairseq-train options a lever of supernet training adds to the ``space`` supernet's command."""
    if lever == "inplace":  # in-place distillation: the largest subnet of each update teaches the sampled ones
        return ["--criterion", "word_distillation", "--teacher", "largest"]
    if lever == "warm":  # start from the multiplication-only supernet's weights (the hybrid: those it shares)
        return ["--init-from-supernet", work / WARM_SOURCE]
    return []


def seed_suffix(seed: int) -> str:
    """What a run of ``seed`` adds to its name: nothing for the recipe's seed 1, +seedN for another."""
    return "" if seed == 1 else f"+seed{seed}"


def recipe(save: Path, updates: int, warmup: int = 400, seed: int = 1, keep: int = 1) -> list:
    """The Multi30k baseline recipe at a fixed number of updates, validating (and saving) every VALIDATE_EVERY,
    keeping the ``keep`` newest of those checkpoints."""
    return multi30k_recipe(save, [
        "--max-update", str(updates), "--validate-interval-updates", str(VALIDATE_EVERY),
        "--save-interval-updates", str(VALIDATE_EVERY), "--keep-interval-updates", str(keep),
    ], warmup, seed)


def averaged(save: Path, count: int, updates: int) -> Path | None:
    """WORK/RUN/checkpoint_avg_lastN.pt: the mean of the run's ``count`` newest interval checkpoints (the
    newest at ``updates``), made once; None when the run did not keep them (trained with fewer kept)."""
    try:
        kept = last_checkpoints(save, count, "interval")
        if INTERVAL_CHECKPOINT.fullmatch(kept[-1].name).group(1) != str(updates):
            raise InvalidInput(f"its newest interval checkpoint, {kept[-1].name}, is not at {updates} updates")
    except InvalidInput as error:
        print(f"quality_ladder: no average for {save.name}: {error}", flush=True)
        return None
    out = save / f"checkpoint_avg_last{count}.pt"
    if not out.is_file() or out.stat().st_mtime < kept[-1].stat().st_mtime:
        write_checkpoint(average_checkpoints(kept), out)
    return out


def inherited_start(supernet: str | None, subnet: Path, save: Path) -> list:
    """``--finetune-from-model`` options starting a row from ``subnet``'s weights in ``supernet``, exported once
    to ``save``/inherited.pt (fairseq ignores the option once the run has a checkpoint_last.pt to resume), converted
    to one weight per operator: the row fine-tunes with the recipe's own options."""
    if not supernet:
        return []
    inherited = save / "inherited.pt"
    if not inherited.is_file():
        write_export(supernet, subnet, inherited)
    return ["--finetune-from-model", inherited]


def searched_subnet(out: Path, budget: float) -> Path:
    """Where the search in ``out`` keeps its best subnet under ``budget`` mJ: ``out``/budget-B/best.yml, or
    ``out``/best.yml when ``out`` holds a search of that one budget alone (as earlier ladders wrote it)."""
    state = out / "state.json"
    if (out / "best.yml").is_file() and state.is_file():
        if json.loads(state.read_text())["signature"]["constraints"] == [["energy_mj", float(f"{budget:g}")]]:
            return out / "best.yml"
    return out / f"budget-{budget:g}" / "best.yml"


def valid_curve(log: Path, key: str = "loss") -> dict[int, float]:
    """{num_updates: validation ``key`` (loss, nll_loss)} from every run's log of one model (resumed runs appended)."""
    curve = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            if "valid on 'valid' subset" in line:
                loss, updates = re.search(rf"\| {key} ([\d.]+)", line), re.search(r"num_updates (\d+)", line)
                if loss and updates:
                    curve[int(updates.group(1))] = float(loss.group(1))
    return dict(sorted(curve.items()))


def trained_updates(save: Path) -> int:
    """Updates in ``save``'s checkpoint_last.pt (0: none yet)."""
    last = save / "checkpoint_last.pt"
    if not last.is_file():
        return 0
    import torch
    return torch.load(last, map_location="cpu", weights_only=True)["optimizer_history"][-1]["num_updates"]


def resumed_padding(save: Path) -> list:
    """``--add-conv-padding`` of the run ``save`` resumes: what its checkpoint was trained with ("zeros" for
    one saved before the option existed), so that no resumed run changes it midway; nothing for a new run."""
    last = save / "checkpoint_last.pt"
    if not last.is_file():
        return []
    import fairseq_shiftadd.models.config  # noqa: F401  (registers the checkpoint upgrade that fills in "zeros")

    return ["--add-conv-padding", load_weights_only(last)["cfg"]["model"]["add_conv_padding"]]


def given_row(text: str) -> tuple[str, Path]:
    """``NAME=YAML`` of ``--subnet-file``: a row NAME training the subnet file YAML (checked here, before any training)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=YAML, got {text!r}")
    try:
        load_subnet_file(path)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name, Path(path).resolve()


def write_fixed_subnet(changes: dict, out: Path) -> Path:
    subnet = yaml.safe_load(BASELINE_SUBNET.read_text())
    subnet.update(changes)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(subnet, sort_keys=False))
    return out


def appended_log(name: str, logs: Path) -> Path:
    """Each training appends to logs/NAME.log so a resumed run keeps the earlier curve."""
    return logs / f"{name}.log"


def levers(name: str, args: argparse.Namespace) -> str:
    """The table's account of what a row had beyond the plain recipe."""
    had = []
    if args.supernet_lever and name in SEARCHED_ROWS:
        options = supernet_lever_options(args.supernet_lever, Path(args.work), SEARCHED_ROWS[name][0])
        had.append(f"supernet: {' '.join(map(str, options))}")
    if args.extra and name != "baseline":
        had.append(" ".join(args.extra))
    if args.inherit_from and name != "baseline":
        had.append(f"fine-tuned from {args.inherit_from}")
    return "; ".join(had) or "-"


def merged_rows(table: Path, rows: list[dict]) -> list[dict]:
    """The rows of ``table`` (JSON) from earlier invocations with ``rows`` in place of those of the same model,
    then ``rows``' new models: a command that trains some rows of a table adds them to it, dropping none."""
    earlier = json.loads(table.read_text()) if table.is_file() else []
    for row in earlier:  # JSON keys are strings
        row["valid_loss"] = {int(updates): loss for updates, loss in row["valid_loss"].items()}
    fresh = {row["model"]: row for row in rows}
    kept = [fresh.pop(row["model"], row) for row in earlier]
    return kept + list(fresh.values())


def markdown_table(rows: list[dict], marks: tuple[int, ...] = (500, 1000)) -> str:
    """The ladder's table of ``rows``, with a column of checkpoint averages when a row has one."""
    averages = {row.get("average_last") for row in rows if row.get("sacrebleu_averaged") is not None}  # None: not recorded
    single = len(averages) == 1 and None not in averages
    extra_column = (f" sacreBLEU, average of last {next(iter(averages))} |" if single
                    else " sacreBLEU, average of the last checkpoints |" if averages else "")
    lines = [
        "| model | levers | energy mJ 32-bit | 8-bit | accelerator mJ | params M | "
        + " | ".join(f"val loss @{m}" for m in marks) + " | val loss final (updates) | sacreBLEU |" + extra_column,
        "|---|---|---|---|---|---|" + "---|" * len(marks) + "---|---|" + ("---|" if averages else ""),
    ]
    for r in rows:
        at = " | ".join(f"{r['valid_loss'][m]:.3f}" if m in r["valid_loss"] else "-" for m in marks)
        final = f"{r['valid_loss'][r['updates']]:.3f} ({r['updates']})" if r["updates"] else "-"
        average = r.get("sacrebleu_averaged")
        average_cell = ("" if not averages else " - |" if average is None
                        else f" {average:.2f} |" if single else f" {average:.2f} (last {r.get('average_last', '?')}) |")
        lines.append(f"| {r['model']} | {r['levers']} | {r['energy_mj_32']:.4f} | {r['energy_mj_8']:.4f} | "
                     f"{r['accelerator_mj_32']:.4f} | {r['params_m']:.2f} | {at} | {final} | {r['sacrebleu']:.2f} |" + average_cell)
    if rows:
        lines.append(f"\nsacreBLEU signature: {rows[0]['signature']}")
    return "\n".join(lines) + "\n"


def plot(curves: dict[str, dict[int, float]], out: Path) -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        if curve:
            ax.plot(list(curve), list(curve.values()), marker="o", markersize=3, label=name,
                    linestyle="--" if name == "baseline" else "-", color="black" if name == "baseline" else None)
    ax.set_xlabel("updates")
    ax.set_ylabel("validation loss (label-smoothed cross-entropy, base 2)")
    ax.set_title("Multi30k En-De, one recipe, equal updates")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--raw-dir", default=str(REPO.parent / "shared/data/multi30k"), help="Multi30k raw files")
    parser.add_argument("--work", default="/work/m30k-ladder", help="work directory (keep it outside the repository)")
    parser.add_argument("--rows", nargs="+", choices=ROWS, metavar="ROW",
                        help=f"rows to train: {' '.join(ROWS)} (default: all, or none when --subnet-file is given)")
    parser.add_argument("--subnet-file", nargs="+", default=[], type=given_row, metavar="NAME=YAML",
                        help="rows NAME that train the subnet in YAML with the recipe, e.g. "
                             "hybrid-50-kept=configs/subnets/multi30k-hybrid-50.yml")
    parser.add_argument("--updates", type=int, default=1000, help="updates of every row")
    parser.add_argument("--supernet-updates", type=int, default=1000, help="updates of the supernets of the searched rows")
    parser.add_argument("--supernet-warmup", type=int, default=100, help="learning-rate warm-up updates of the supernets")
    parser.add_argument("--valid-sentences", type=int, default=200, help="validation sentences the search scores")
    parser.add_argument("--at-once", type=int, default=2, help="trainings at a time, one thread each (cores)")
    parser.add_argument("--no-score", action="store_true", help="train only; no BLEU, no table")
    parser.add_argument("--seed", type=int, default=1, help="the rows' seed (supernets keep 1); rows of another seed are RUN+seedN")
    parser.add_argument("--average-last", type=int, default=0, metavar="N",
                        help="keep every row's last N interval checkpoints and score their average too (0: off)")
    parser.add_argument("--inherit-from", metavar="SUPERNET.pt",
                        help="fine-tune every shiftadd_transformer row from its subnet's weights in this supernet "
                             "instead of training it from scratch (runs ROW+inherit)")
    parser.add_argument("--supernet-lever", choices=SUPERNET_LEVERS,
                        help="a lever of supernet training: its supernets, searches and searched rows are NAME+LEVER; "
                             "inplace: in-place distillation; warm: every supernet starts from WORK/supernet-mult's "
                             "weights (train that first: --rows hat-50)")
    parser.add_argument("--lever", help="name of the lever --extra gives: its runs are ROW+LEVER, its table ladder+LEVER.md")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="fairseq-train options given to every shiftadd_transformer row (the lever), e.g. "
                             "--criterion word_distillation --teacher WORK/baseline/checkpoint_best.pt")
    args = parser.parse_args()
    if args.average_last < 0:
        parser.error(f"--average-last must be >= 0, got {args.average_last}")
    if args.inherit_from and not Path(args.inherit_from).is_file():
        parser.error(f"--inherit-from: supernet checkpoint {args.inherit_from} does not exist")
    if bool(args.lever) != bool(args.extra):
        parser.error("--lever and --extra go together: name the lever whose options --extra gives")
    given = dict(args.subnet_file)
    if clash := sorted(set(given) & set(ROWS)):
        parser.error(f"--subnet-file: {clash[0]} is a ladder row; give the row another name")
    if args.rows is None:
        args.rows = [] if given else list(ROWS)
    if args.supernet_lever == "warm" and not (Path(args.work) / WARM_SOURCE).is_file():
        parser.error(f"--supernet-lever warm: {Path(args.work) / WARM_SOURCE} does not exist; "
                     "train it first (--rows hat-50)")
    work = Path(args.work)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    data, vocab = prepared_data(work, args.raw_dir, logs)
    train = [BIN / "fairseq-train", data, "--user-dir", "fairseq_shiftadd"]
    tag = f"+{args.supernet_lever}" if args.supernet_lever else ""

    subnets = {"baseline": BASELINE_SUBNET}
    subnets.update({name: write_fixed_subnet(FIXED_ROWS[name], work / "subnets" / f"{name}.yml") for name in FIXED_ROWS})
    subnets.update(given)
    searched = [name for name in args.rows if name in SEARCHED_ROWS]
    spaces = sorted({SEARCHED_ROWS[name][0] for name in searched})
    side_by_side({
        f"supernet-{space}{tag}": [*train, "--task", "shiftadd_supernet_translation", "--arch", "shiftadd_supernet_wmt_en_de",
                                   "--search-space", SPACES[space], "--sandwich", "--weight-sharing", "heterogeneous",
                                   *recipe(work / f"supernet-{space}{tag}", args.supernet_updates, args.supernet_warmup),
                                   *resumed_padding(work / f"supernet-{space}{tag}"),
                                   *supernet_lever_options(args.supernet_lever, work, space)]  # after the recipe's --criterion
        for space in spaces if trained_updates(work / f"supernet-{space}{tag}") < args.supernet_updates
    }, logs, args.at_once, append=True)

    base_energy = cost(BASELINE_SUBNET, 32, vocab)["energy_mj"]
    jobs = {}
    for space in spaces:
        out = work / f"search-{space}{tag}"
        budgets = {}
        for name in searched:
            if SEARCHED_ROWS[name][0] == space:
                budgets[name] = round(SEARCHED_ROWS[name][1] * base_energy, 6)
                subnets[name] = searched_subnet(out, budgets[name])
        missing = sorted({budgets[name] for name in budgets if not subnets[name].exists()})
        if missing:  # one budget: shiftadd-search writes into --out itself; several: one folder each
            jobs[out.name] = [BIN / "shiftadd-search", data, "--path", work / f"supernet-{space}{tag}/checkpoint_best.pt",
                              "--search-space", SPACES[space], "--energy-mj", ",".join(f"{b:g}" for b in missing),
                              *EVOLUTION, "--max-sentences-valid", str(args.valid_sentences),
                              "--out", out / f"budget-{missing[0]:g}" if len(missing) == 1 else out, "--no-progress"]
    side_by_side(jobs, logs, args.at_once)

    seeded = seed_suffix(args.seed)
    # levers of the shiftadd_transformer rows (the fairseq baseline has none)
    row_levers = (f"+{args.lever}" if args.lever else "") + ("+inherit" if args.inherit_from else "")
    runs = {name: name + (tag if name in SEARCHED_ROWS else "") + (row_levers if name != "baseline" else "") + seeded
            for name in [*args.rows, *given]}
    seed_and_keep = dict(seed=args.seed, keep=max(1, args.average_last))
    jobs = {}
    for name, run in runs.items():
        if trained_updates(work / run) >= args.updates:
            continue
        if name == "baseline":
            jobs[run] = [*train, *BASELINE_ARCH, *recipe(work / run, args.updates, **seed_and_keep)]
        else:  # the lever's options last: the recipe's own (--criterion) would otherwise override them
            jobs[run] = [*train, "--arch", "shiftadd_transformer", "--subnet", subnets[name], *recipe(work / run, args.updates, **seed_and_keep),
                         *resumed_padding(work / run), *inherited_start(args.inherit_from, subnets[name], work / run), *args.extra]
    side_by_side(jobs, logs, args.at_once, append=True)
    if args.no_score:
        return

    coster = SubnetCoster(None, vocab_size=vocab)
    rows = []
    for name, run in runs.items():
        save = work / run
        if not (save / "checkpoint_best.pt").exists():
            continue
        curve = valid_curve(appended_log(run, logs))
        subnet = load_subnet_file(subnets[name])
        scored = scored_once(save / "checkpoint_best.pt", data, subnets[name], logs / f"score-{run}.log")
        mean = averaged(save, args.average_last, max(curve, default=0)) if args.average_last else None
        averaged_bleu = scored_once(mean, data, subnets[name], logs / f"score-{run}-avg{args.average_last}.log")["sacrebleu"] if mean else None
        rows.append({
            "model": run, "levers": levers(name, args),
            "energy_mj_32": coster.energy_mj(subnet, bits=32), "energy_mj_8": coster.energy_mj(subnet, bits=8),
            "accelerator_mj_32": coster.energy_mj(subnet, bits=32, hardware="accelerator"),
            "params_m": coster.params(subnet) / 1e6, "valid_loss": curve, "updates": max(curve, default=0),
            "sacrebleu": scored["sacrebleu"], "sacrebleu_averaged": averaged_bleu, "average_last": args.average_last,
            "signature": scored["signature"],
        })
    table = "ladder" + tag + row_levers + seeded
    rows = merged_rows(work / f"{table}.json", rows)
    (work / f"{table}.json").write_text(json.dumps(rows, indent=1))
    plot({r["model"]: r["valid_loss"] for r in rows}, work / f"{table}_curves.png")
    text = markdown_table(rows)
    (work / f"{table}.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
