"""``shiftadd-search``: evolutionary search of a trained supernet under hardware budgets.

Fitness is the validation loss of each subnet with inherited supernet weights (never test data);
budgets are energy (op-count or accelerator model), predicted latency, accelerator latency or
parameters. A comma-separated list for one budget (``--energy-mj 20,30,40``) runs one search per
value, sharing the fitness cache, and plots the whole front in ``OUT/pareto.png``.

Example::

    shiftadd-search data-bin/tiny --path supernet/checkpoint_last.pt \\
        --search-space configs/spaces/tiny.yml --energy-mj 0.5 --out search-out
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..search.evolution import (
    Constraint, Cost, Evolution, EvolutionConfig, SearchResult, cached_cost, evolve_budgets,
)
from ..space import SearchSpace, Subnet
from ..data.sized_dictionary import data_vocab_size
from ..errors import InvalidInput, MissingInput, user_errors_to_exit
from .common import add_verbose, parse

if TYPE_CHECKING:
    from ..search.fitness import SupernetFitness


def parse_limits(text: str) -> list[float]:
    """'20,30,40' -> [20.0, 30.0, 40.0]; every budget must be a positive number."""
    try:
        limits = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers, got {text!r}")
    if not limits or any(not limit > 0 for limit in limits):
        raise argparse.ArgumentTypeError(f"budgets must be positive numbers, got {text!r}")
    return limits


EVOLUTION_HELP = {
    "population": "subnets per generation",
    "parents": "best subnets kept as parents of the next generation",
    "mutations": "children bred by mutating a parent, per generation",
    "mutation_prob": "probability that a mutation redraws each gene",
    "crossovers": "children bred by crossing two parents, per generation",
    "iterations": "generations",
    "seed": "seed of the evolution (same seed and inputs: same result)",
}


def build_parser() -> argparse.ArgumentParser:
    defaults = EvolutionConfig()
    parser = argparse.ArgumentParser(
        prog="shiftadd-search", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("data", help="binarized data directory of the supernet (fairseq-preprocess output)")
    parser.add_argument("--path", required=True, help="supernet checkpoint")
    parser.add_argument("--search-space", required=True, help="search space YAML")
    parser.add_argument("--out", required=True, help="output directory (also holds the resume state)")

    budgets = parser.add_argument_group("budgets (at least one; one of them may list several values)")
    budgets.add_argument("--energy-mj", type=parse_limits, help="energy budget(s) in mJ")
    budgets.add_argument("--hardware", choices=("opcount", "accelerator"), default="opcount",
                         help="energy model: op counts x unit energies, or the row-stationary accelerator")
    budgets.add_argument("--bits", type=int, choices=(8, 32), default=32, help="precision of the energy model")
    budgets.add_argument("--tokens", type=int, default=30, help="sequence length the costs are computed at")
    budgets.add_argument("--latency-ms", type=parse_limits, help="budget(s) in ms on the latency the predictor gives")
    budgets.add_argument("--latency-predictor", help="latency predictor checkpoint (needed by --latency-ms)")
    budgets.add_argument("--accel-latency-ms", type=parse_limits, help="accelerator-model latency budget(s) in ms")
    budgets.add_argument("--params", type=parse_limits, help="parameter budget(s) in millions")

    evolution = parser.add_argument_group("evolution")
    for name, what in EVOLUTION_HELP.items():
        evolution.add_argument(f"--{name.replace('_', '-')}", type=type(getattr(defaults, name)), default=getattr(defaults, name), help=what)

    fitness = parser.add_argument_group("fitness (validation loss with inherited weights)")
    fitness.add_argument("--valid-subset", default="valid", help="validation subset (never test)")
    fitness.add_argument("--max-sentences-valid", type=int, help="score only the first N validation sentences (a fixed subset; default: all)")
    fitness.add_argument("--max-tokens-valid", type=int, help="tokens per validation batch")
    fitness.add_argument("--cuda", action="store_true", help="evaluate on the GPU (default: CPU)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_verbose(parser)
    return parser


# budget option -> cost column it limits
BUDGETS = {"energy_mj": "energy_mj", "latency_ms": "latency_ms", "accel_latency_ms": "accel_latency_ms", "params": "params_m"}


def requested_budgets(args: argparse.Namespace) -> list[tuple[str, list[float]]]:
    """(option, limits) of every budget given on the command line."""
    return [(option, getattr(args, option)) for option in BUDGETS if getattr(args, option)]


def flag(option: str) -> str:
    return "--" + option.replace("_", "-")


class CostModels:
    """The cost functions the budgets and the CSV columns draw on, each memoised by subnet."""

    def __init__(self, args: argparse.Namespace, space: SearchSpace) -> None:
        from ..hardware.costing import SubnetCoster

        coster = SubnetCoster(space, vocab_size=data_vocab_size(args.data))
        self.columns = {
            "energy_mj": cached_cost(
                lambda s: coster.energy_mj(s, bits=args.bits, tokens=args.tokens, hardware=args.hardware)
            ),
            "params_m": cached_cost(lambda s: coster.params(s) / 1e6),
        }
        if args.accel_latency_ms or args.hardware == "accelerator":
            self.columns["accel_latency_ms"] = cached_cost(
                lambda s: coster.accel_latency_ms(s, bits=args.bits, tokens=args.tokens)
            )
        if args.latency_predictor:
            from ..hardware.predictor import LatencyPredictor

            predictor = LatencyPredictor.from_checkpoint(args.latency_predictor, space=space)
            self.columns["latency_ms"] = cached_cost(lambda s: float(predictor.predict([s])[0]))



def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors argparse cannot see: missing budgets, files, or a test subset."""
    budgets = requested_budgets(args)
    if not budgets:
        parser.error(f"give at least one budget: {', '.join(map(flag, BUDGETS))}")
    if args.tokens < 1:
        parser.error(f"--tokens must be >= 1, got {args.tokens}")
    if args.latency_ms and not args.latency_predictor:
        parser.error("--latency-ms needs --latency-predictor P.pt")
    swept = [flag(option) for option, limits in budgets if len(limits) > 1]
    if len(swept) > 1:
        parser.error(f"only one budget may list several values, got {' and '.join(swept)}")
    if "test" in args.valid_subset.split(","):
        parser.error("--valid-subset must not include test: the search selects on validation data only")
    files = [("data directory", args.data, Path.is_dir), ("--path", args.path, Path.is_file),
             ("--search-space", args.search_space, Path.is_file)]
    if args.latency_predictor:
        files.append(("--latency-predictor", args.latency_predictor, Path.is_file))
    for what, path, exists in files:
        if not exists(Path(path)):
            raise MissingInput(f"{what} {path} does not exist")


class LazyFitness:
    """Loads the supernet at the first evaluation, so an impossible budget fails in seconds and a
    finished search re-writes its outputs without loading the model."""

    def __init__(self, load: Callable[[], "SupernetFitness"]) -> None:
        self._load = load
        self._fitness: "SupernetFitness | None" = None

    def __call__(self, subnets: list[Subnet]) -> list[float]:
        if self._fitness is None:
            self._fitness = self._load()
        return self._fitness.losses(subnets)


def search_context(args: argparse.Namespace) -> str:
    """What cached losses and costs depend on, so a state from another supernet, subset or cost
    model is refused instead of reused."""
    return json.dumps({
        "data": str(Path(args.data).resolve()),
        "checkpoint": str(Path(args.path).resolve()),
        "valid_subset": args.valid_subset,
        "max_sentences": args.max_sentences_valid,
        "max_tokens": args.max_tokens_valid,
        "hardware": args.hardware,
        "bits": args.bits,
        "tokens": args.tokens,
        "latency_predictor": args.latency_predictor and str(Path(args.latency_predictor).resolve()),
    }, sort_keys=True)


def searched_with(subnet_file: str | Path) -> Path | None:
    """The supernet checkpoint a search scored ``subnet_file`` with, when it is a search's
    ``best.yml`` (its ``state.json`` beside it records the checkpoint); None for any other file."""
    state_path = Path(subnet_file).parent / "state.json"
    if not state_path.is_file():
        return None
    try:
        context = json.loads(json.loads(state_path.read_bytes().decode("utf-8"))["signature"]["context"])
        return Path(context["checkpoint"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"{state_path} is not a search state with the supernet it used "
                           "(signature.context.checkpoint); give --inherit-from SUPERNET.pt or --from-scratch") from None


def run(args: argparse.Namespace) -> tuple[dict[str, Cost], list[tuple[float | None, SearchResult]]]:
    """Run the search(es); return the cost columns and (swept limit or None, result) pairs."""
    from ..search.fitness import SupernetFitness

    space = SearchSpace.from_file(args.search_space)
    config = EvolutionConfig(
        population=args.population, parents=args.parents, mutations=args.mutations,
        crossovers=args.crossovers, iterations=args.iterations, mutation_prob=args.mutation_prob,
        seed=args.seed,
    )
    models = CostModels(args, space)
    budgets = [(BUDGETS[option], limits) for option, limits in requested_budgets(args)]
    fitness = LazyFitness(lambda: SupernetFitness(
        args.data, args.path, space, valid_subset=args.valid_subset,
        max_sentences=args.max_sentences_valid, max_tokens=args.max_tokens_valid, cpu=not args.cuda,
    ))
    progress = not args.no_progress
    swept = [(name, limits) for name, limits in budgets if len(limits) > 1]
    if not swept:
        constraints = [Constraint(name, limits[0], models.columns[name]) for name, limits in budgets]
        engine = Evolution(space, fitness, constraints, config, context=search_context(args))
        return models.columns, [(None, engine.run(args.out, metrics=models.columns, progress=progress))]
    sweep_name, limits = swept[0]
    fixed = [Constraint(name, lim[0], models.columns[name]) for name, lim in budgets if name != sweep_name]
    sweep = Constraint(sweep_name, limits[0], models.columns[sweep_name])
    results = evolve_budgets(space, fitness, sweep, limits, args.out, config, fixed=fixed,
                             metrics=models.columns, context=search_context(args), progress=progress)
    return models.columns, list(zip(sorted(set(limits)), results))


def summary(result: SearchResult, columns: dict[str, Cost], limit: float | None) -> str:
    costs = ", ".join(f"{name} {cost(result.best):.4g}" for name, cost in columns.items())
    budget = "" if limit is None else f"budget {limit:g}: "
    return f"{budget}best loss {result.loss:.4f} ({costs}) -> {result.out_dir / 'best.yml'}"


@user_errors_to_exit
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    check_args(parser, args)
    columns, results = run(args)
    for limit, result in results:
        print(summary(result, columns, limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
