"""Evolutionary search (HAT) for the subnet with the lowest validation loss under hardware budgets.

The engine knows nothing of fairseq: a fitness is any function from subnets to losses (lower is
better) and a constraint is any cost function with a limit, so tests drive it with synthetic
functions and the CLI plugs in the supernet's validation loss and the hardware cost models.

Every candidate, initial or bred, satisfies every constraint. Individuals are full genomes
(``SearchSpace.genes()`` order, inactive layers included, so a mutation that adds a layer revives
its inherited genes); losses are cached by ``Subnet.key()`` so no subnet is evaluated twice.

After each iteration the whole state (population, RNG state, fitness cache, history) is written
atomically to ``OUT/state.json``: a search killed at any point and restarted with the same
arguments continues from the last completed iteration and ends exactly where an uninterrupted run
ends (breeding draws only from the seeded RNG, never from the cache or the clock).
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml
from tqdm import tqdm

from ..files import atomic_path, atomic_write_text
from ..space import SearchSpace, Subnet, write_subnet
from ..errors import InvalidInput, one_line

Genome = tuple[Any, ...]
Fitness = Callable[[list[Subnet]], list[float]]
Cost = Callable[[Subnet], float]

STATE_VERSION = 1
STATE_KEYS = ("signature", "iteration", "population", "rng", "history", "evaluated", "cache")  # what state() writes


class NoFeasibleSubnetError(InvalidInput):
    """No subnet of the space satisfies the constraints; the message names the budget."""


class ResumeError(InvalidInput):
    """``OUT/state.json`` was written by a different search; the message names the difference."""


@dataclass(frozen=True)
class EvolutionConfig:
    """HAT's evolution hyper-parameters; the bred population is parents + mutations + crossovers.

    ``sample_tries`` bounds the random draws for the initial population (in all) and
    ``breed_tries`` the draws per child before the child falls back to (a copy of) its parent.
    """

    population: int = 125
    parents: int = 25
    mutations: int = 50
    mutation_prob: float = 0.3
    crossovers: int = 50
    iterations: int = 30
    seed: int = 1
    sample_tries: int = 10_000
    breed_tries: int = 100

    def __post_init__(self) -> None:
        for name in ("population", "parents", "iterations", "sample_tries", "breed_tries"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("mutations", "crossovers"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.parents > self.population:
            raise InvalidInput(f"parents ({self.parents}) must not exceed population ({self.population})")
        if not 0.0 <= self.mutation_prob <= 1.0:
            raise InvalidInput(f"mutation_prob must be in [0, 1], got {self.mutation_prob}")


@dataclass(frozen=True)
class Constraint:
    """A hardware budget: a candidate is feasible iff ``cost(subnet) <= limit``."""

    name: str
    limit: float
    cost: Cost

    def describe(self) -> str:
        return f"{self.name} <= {self.limit:g}"


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one search: the best subnet and every subnet it evaluated, in order."""

    best: Subnet
    loss: float
    evaluated: list[tuple[Subnet, float]]
    out_dir: Path


@functools.lru_cache(maxsize=1 << 16)
def subnet_key(subnet: Subnet) -> str:
    """``Subnet.key()``, memoised: the key is a YAML dump and the search asks for it often."""
    return subnet.key()


def cached_cost(cost: Cost) -> Cost:
    """Memoise a cost function by subnet (costs are pure functions of the architecture)."""
    return functools.lru_cache(maxsize=1 << 16)(cost)


def _rank(loss: float) -> float:
    """Sort key of a loss: a NaN (diverged subnet) ranks last."""
    return math.inf if math.isnan(loss) else loss


class Evolution:
    """One evolutionary search under fixed constraints.

    Args:
        space: the search space; genomes follow ``space.genes()``.
        fitness: losses of a batch of subnets (lower is better).
        constraints: every candidate satisfies all of them (at least one).
        config: evolution hyper-parameters.
        cache: ``Subnet.key() -> loss``; pass the same dict to several searches to share it.
        context: identifies what the fitness and the costs are computed with (checkpoint,
            validation subset, cost model) so that a state written with others is refused.
    """

    def __init__(
        self,
        space: SearchSpace,
        fitness: Fitness,
        constraints: Sequence[Constraint],
        config: EvolutionConfig = EvolutionConfig(),
        cache: dict[str, float] | None = None,
        context: str = "",
    ) -> None:
        if not constraints:
            raise ValueError("constraints: at least one constraint is required")
        self.space = space
        self.fitness = fitness
        self.constraints = list(constraints)
        self.config = config
        self.cache: dict[str, float] = {} if cache is None else cache
        self.context = context
        self.genes = space.genes()
        self.rng = random.Random(config.seed)
        self.population: list[Genome] = []
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self.evaluated: list[str] = []  # keys in the order this search first asked for them
        self._evaluated_set: set[str] = set()
        self._subnets: dict[str, Subnet] = {}
        self.evaluations = 0  # fitness evaluations computed by this process (cache misses)
        self.fitness_seconds = 0.0

    # ------------------------------------------------------------------ feasibility and breeding
    def feasible(self, subnet: Subnet) -> bool:
        return all(c.cost(subnet) <= c.limit for c in self.constraints)

    def _accept(self, genome: Genome, taken: set[Subnet]) -> bool:
        """True (and the subnet is marked taken) if the genome is feasible and new."""
        subnet = self.space.decode(genome)
        if subnet in taken or not self.feasible(subnet):
            return False
        taken.add(subnet)
        return True

    def initial_population(self) -> list[Genome]:
        """Distinct random feasible genomes (rejection sampling), topped up by mutation if rare."""
        cfg = self.config
        population: list[Genome] = []
        taken: set[Subnet] = set()
        for _ in range(cfg.sample_tries):
            if len(population) == cfg.population:
                break
            genome = tuple(self.rng.choice(gene.choices) for gene in self.genes)
            if self._accept(genome, taken):
                population.append(genome)
        if len(population) < cfg.population:
            smallest = tuple(self.space.encode(self.space.smallest()))
            if self._accept(smallest, taken):
                population.append(smallest)
        if not population:
            raise NoFeasibleSubnetError(self._infeasible_message())
        while len(population) < cfg.population:
            population.append(self.mutate(self.rng.choice(population), taken))
        return population

    def _infeasible_message(self) -> str:
        smallest = self.space.smallest()
        costs = ", ".join(f"{c.name} = {c.cost(smallest):g}" for c in self.constraints)
        budget = " and ".join(c.describe() for c in self.constraints)
        return (
            f"no subnet of search space {self.space.name} satisfies {budget} "
            f"({self.config.sample_tries} random samples and the smallest subnet tried; the smallest has {costs})"
        )

    def mutate(self, genome: Genome, taken: set[Subnet]) -> Genome:
        """Resample each gene with probability ``mutation_prob`` until feasible and new."""
        p = self.config.mutation_prob
        for _ in range(self.config.breed_tries):
            child = tuple(
                self.rng.choice(gene.choices) if self.rng.random() < p else value
                for gene, value in zip(self.genes, genome)
            )
            if self._accept(child, taken):
                return child
        return genome

    def crossover(self, first: Genome, second: Genome, taken: set[Subnet]) -> Genome:
        """Take each gene from either parent with probability 1/2 until feasible and new."""
        for _ in range(self.config.breed_tries):
            child = tuple(a if self.rng.random() < 0.5 else b for a, b in zip(first, second))
            if self._accept(child, taken):
                return child
        return first

    # ------------------------------------------------------------------ evaluation
    def losses(self, subnets: list[Subnet]) -> list[float]:
        """Losses of ``subnets``; only cache misses reach the fitness, in one batch."""
        keys = [subnet_key(subnet) for subnet in subnets]
        missing: dict[str, Subnet] = {}
        for key, subnet in zip(keys, subnets):
            self._subnets.setdefault(key, subnet)
            if key not in self.cache:
                missing.setdefault(key, subnet)
            if key not in self._evaluated_set:
                self._evaluated_set.add(key)
                self.evaluated.append(key)
        if missing:
            start = time.perf_counter()
            values = list(self.fitness(list(missing.values())))
            self.fitness_seconds += time.perf_counter() - start
            if len(values) != len(missing):
                raise ValueError(f"fitness returned {len(values)} losses for {len(missing)} subnets")
            self.cache.update(zip(missing, map(float, values)))
            self.evaluations += len(missing)
        return [self.cache[key] for key in keys]

    def step(self) -> dict[str, Any]:
        """Evaluate the population, keep the best distinct subnets as parents, breed the next one."""
        cfg = self.config
        subnets = [self.space.decode(genome) for genome in self.population]
        losses = self.losses(subnets)
        order = sorted(range(len(subnets)), key=lambda i: (_rank(losses[i]), i))
        parents: list[Genome] = []
        taken: set[Subnet] = set()
        for i in order:
            if subnets[i] not in taken:
                taken.add(subnets[i])
                parents.append(self.population[i])
            if len(parents) == cfg.parents:
                break
        mutations = [self.mutate(self.rng.choice(parents), taken) for _ in range(cfg.mutations)]
        crossovers = [self.crossover(*self._pair(parents), taken) for _ in range(cfg.crossovers)]
        self.population = parents + mutations + crossovers
        self.iteration += 1
        best = order[0]
        record = {
            "iteration": self.iteration,
            "best_loss": losses[best],
            "best": subnet_key(subnets[best]),
            "parents_mean_loss": sum(losses[i] for i in order[: len(parents)]) / len(parents),
            "evaluated": len(self.evaluated),
        }
        self.history.append(record)
        return record

    def _pair(self, parents: list[Genome]) -> tuple[Genome, Genome]:
        if len(parents) < 2:
            return parents[0], parents[0]
        first, second = self.rng.sample(parents, 2)
        return first, second

    # ------------------------------------------------------------------ state
    def signature(self) -> dict[str, Any]:
        """What must match for a state to be resumed (everything but the iteration count)."""
        config = dataclasses.asdict(self.config)
        del config["iterations"]
        return json.loads(json.dumps({
            "space": self.space.fingerprint(),
            "constraints": [[c.name, c.limit] for c in self.constraints],
            "config": config,
            "context": self.context,
        }))

    def state(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {
            "version": STATE_VERSION,
            "signature": self.signature(),
            "iteration": self.iteration,
            "population": [list(genome) for genome in self.population],
            "rng": [version, list(internal), gauss],
            "history": self.history,
            "evaluated": self.evaluated,
            "cache": self.cache,
        }

    def save_state(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.state()))

    def load_state(self, path: Path) -> None:
        try:
            state = json.loads(path.read_bytes().decode("utf-8"))
        except ValueError as err:  # bad JSON or bad UTF-8
            raise ResumeError(f"{path} is not valid JSON ({one_line(err)}); remove it to start the search afresh") from None
        if not isinstance(state, dict):
            raise ResumeError(f"{path} holds a JSON {type(state).__name__}, expected the search state object; remove it to start afresh")
        if state.get("version") != STATE_VERSION:
            raise ResumeError(f"{path} has state version {state.get('version')}, expected {STATE_VERSION}")
        missing = [key for key in STATE_KEYS if key not in state]
        if missing or not isinstance(state["signature"], dict):
            problem = f"lacks the key '{missing[0]}'" if missing else "has a 'signature' that is not an object"
            raise ResumeError(f"{path} {problem}; remove it to start the search afresh")
        try:
            self._restore(path, state)
        except (KeyError, TypeError, ValueError) as err:
            raise ResumeError(f"{path} holds a malformed search state ({type(err).__name__}: {one_line(err)}); remove it to start afresh") from None

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        ours = self.signature()
        for part in ours:
            if state["signature"].get(part) != ours[part]:
                raise ResumeError(
                    f"{path} belongs to a search with another {part}; use a new output directory or remove it"
                )
        if state["iteration"] > self.config.iterations:
            raise ResumeError(
                f"{path} already has {state['iteration']} iterations, more than iterations={self.config.iterations}"
            )
        self.iteration = state["iteration"]
        self.population = [tuple(genome) for genome in state["population"]]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.history = state["history"]
        self.cache.update(state["cache"])
        self.evaluated = list(state["evaluated"])
        self._evaluated_set = set(self.evaluated)

    # ------------------------------------------------------------------ running
    def run(
        self, out_dir: str | Path, metrics: Mapping[str, Cost] | None = None, progress: bool = True
    ) -> SearchResult:
        """Run (or resume) the search; write best.yml, evaluated.csv, pareto.png and state.json.

        Args:
            metrics: extra cost columns for evaluated.csv (the constraints' costs are always there).
        """
        out = Path(out_dir)
        state_path = out / "state.json"
        if state_path.exists():
            self.load_state(state_path)
        else:
            self.population = self.initial_population()
        budget = ", ".join(c.describe() for c in self.constraints)
        with tqdm(total=self.config.iterations, initial=self.iteration, desc=f"search {budget}",
                  unit="it", disable=not progress) as bar:
            while self.iteration < self.config.iterations:
                record = self.step()
                self.save_state(state_path)
                rate = self.evaluations / self.fitness_seconds if self.fitness_seconds else 0.0
                bar.set_postfix(best_loss=f"{record['best_loss']:.4f}", evals_per_s=f"{rate:.1f}")
                bar.update(1)
        result = self.result(out)
        write_subnet(result.best, out / "best.yml")
        columns = cost_columns(self.constraints, metrics)
        rows = cost_rows(result.evaluated, columns)
        write_evaluated_csv(out / "evaluated.csv", rows, list(columns))
        plot_pareto(out / "pareto.png", rows, self.constraints, best=result.best)
        return result

    def result(self, out: Path) -> SearchResult:
        """The best subnet after the last completed iteration (parents carry over, so it is the
        best this search evaluated)."""
        best_key = self.history[-1]["best"]
        evaluated = [(self._subnet(key), self.cache[key]) for key in self.evaluated]
        return SearchResult(best=self._subnet(best_key), loss=self.cache[best_key], evaluated=evaluated, out_dir=out)

    def _subnet(self, key: str) -> Subnet:
        if key not in self._subnets:
            self._subnets[key] = self.space.subnet_from_dict(yaml.safe_load(key), where="state.json")
        return self._subnets[key]


def evolve_budgets(
    space: SearchSpace,
    fitness: Fitness,
    sweep: Constraint,
    limits: Sequence[float],
    out_dir: str | Path,
    config: EvolutionConfig = EvolutionConfig(),
    fixed: Sequence[Constraint] = (),
    metrics: Mapping[str, Cost] | None = None,
    context: str = "",
    progress: bool = True,
) -> list[SearchResult]:
    """One search per limit of ``sweep`` (tightest first), sharing the fitness cache.

    Each budget writes its own outputs to ``OUT/budget-<limit>/``; ``OUT/pareto.png`` plots every
    subnet evaluated by any of them against the swept cost, with the front and each budget's best.
    ``sweep.limit`` is ignored; ``fixed`` constraints hold in every search.
    """
    if not limits:
        raise ValueError("limits: at least one budget is required")
    out = Path(out_dir)
    cache: dict[str, float] = {}
    results = []
    for limit in sorted(set(limits)):
        constraints = [Constraint(sweep.name, limit, sweep.cost), *fixed]
        engine = Evolution(space, fitness, constraints, config, cache=cache, context=context)
        results.append(engine.run(out / f"budget-{limit:g}", metrics=metrics, progress=progress))
    everything: dict[str, tuple[Subnet, float]] = {}
    for result in results:
        everything.update((subnet_key(subnet), (subnet, loss)) for subnet, loss in result.evaluated)
    columns = cost_columns([sweep, *fixed], None)
    rows = cost_rows(list(everything.values()), columns)
    plot_pareto(out / "pareto.png", rows, [sweep], best=[r.best for r in results],
                limits={sweep.name: sorted(set(limits))})
    return results


# ---------------------------------------------------------------------- outputs
def cost_columns(constraints: Sequence[Constraint], metrics: Mapping[str, Cost] | None) -> dict[str, Cost]:
    """Cost columns in order: the constraints' costs, then the extra metrics not already there."""
    columns = {c.name: c.cost for c in constraints}
    for name, cost in (metrics or {}).items():
        columns.setdefault(name, cost)
    return columns


def cost_rows(evaluated: Sequence[tuple[Subnet, float]], columns: Mapping[str, Cost]) -> list[dict[str, Any]]:
    """One row per evaluated subnet: its loss, every cost column, and the subnet itself."""
    return [
        {"subnet": subnet, "loss": loss, **{name: cost(subnet) for name, cost in columns.items()}}
        for subnet, loss in evaluated
    ]


def write_evaluated_csv(path: Path, rows: Sequence[dict[str, Any]], cost_names: Sequence[str]) -> None:
    """evaluated.csv: loss, costs, then one column per subnet field (lists space-separated)."""
    fields = [f.name for f in dataclasses.fields(Subnet)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["loss", *cost_names, *fields])
    for row in rows:
        subnet = row["subnet"]
        values = [getattr(subnet, field) for field in fields]
        cells = [" ".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in values]
        writer.writerow([repr(row["loss"]), *(repr(row[name]) for name in cost_names), *cells])
    atomic_write_text(path, buffer.getvalue())


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (both coordinates minimised), by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], _rank(points[i][1])))
    front, best = [], math.inf
    for i in order:
        if _rank(points[i][1]) < best:
            front.append(i)
            best = _rank(points[i][1])
    return front


# cost column -> axis label: what it is, measured or predicted or computed, and its unit
AXIS_LABELS = {
    "energy_mj": "energy (mJ, computed)",
    "latency_ms": "latency (ms, predicted by the latency MLP)",
    "accel_latency_ms": "accelerator latency (ms, computed by the accelerator model)",
    "params_m": "parameters (millions)",
}


def plot_pareto(
    path: Path,
    rows: Sequence[dict[str, Any]],
    constraints: Sequence[Constraint],
    best: Subnet | Sequence[Subnet],
    limits: Mapping[str, Sequence[float]] | None = None,
) -> None:
    """Loss vs each constrained cost: all points, the Pareto front, budget lines, the best subnet(s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bests = {subnet_key(b) for b in ([best] if isinstance(best, Subnet) else best)}
    fig, axes = plt.subplots(1, len(constraints), figsize=(6 * len(constraints), 4.5), squeeze=False)
    for ax, constraint in zip(axes[0], constraints):
        points = [(row[constraint.name], row["loss"]) for row in rows]
        front = pareto_front(points)
        ax.scatter(*zip(*points), s=10, alpha=0.4, color="tab:gray", label=f"evaluated ({len(points)})")
        ax.plot(*zip(*(points[i] for i in front)), "o-", drawstyle="steps-post", color="tab:blue", ms=4, label="Pareto front")
        chosen = [p for p, row in zip(points, rows) if subnet_key(row["subnet"]) in bests]
        ax.scatter(*zip(*chosen), marker="*", s=160, color="tab:red", zorder=3, label="best")
        budgets = (limits or {}).get(constraint.name, [constraint.limit])
        legend = f"budget{'s' if len(budgets) > 1 else ''} {', '.join(f'{limit:g}' for limit in budgets)}"
        for index, limit in enumerate(budgets):
            ax.axvline(limit, color="tab:red", ls="--", lw=1, label=None if index else legend)
        ax.set_xlabel(AXIS_LABELS.get(constraint.name, constraint.name))
        ax.set_ylabel("validation loss (bits/token, inherited weights)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
