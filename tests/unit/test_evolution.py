"""The evolutionary search engine, driven by synthetic fitness and cost functions on the tiny space."""
from __future__ import annotations

import csv
import json
import math
import random
import time
import zlib
from pathlib import Path

import pytest

from fairseq_shiftadd.search.evolution import (
    Constraint,
    Evolution,
    EvolutionConfig,
    NoFeasibleSubnetError,
    ResumeError,
    evolve_budgets,
    pareto_front,
)
from fairseq_shiftadd.space import SearchSpace, Subnet

ROOT = Path(__file__).resolve().parents[2]
SPACE = SearchSpace.from_file(ROOT / "configs/spaces/tiny.yml")
SMALL = EvolutionConfig(population=20, parents=5, mutations=8, crossovers=7, iterations=6, seed=3)
BLOCK_COST = {"attn": 4.0, "conv": 1.0, "add": 0.5, "shiftadd": 0.7}
FFN_COST = {"mult": 1.0, "shift": 0.4, "add": 0.3}


def synthetic_cost(subnet: Subnet) -> float:
    """A size-and-operator cost: bigger layers and attention/multiplication cost more."""
    cost = subnet.encoder_embed_dim * subnet.encoder_layer_num + subnet.decoder_embed_dim * subnet.decoder_layer_num
    for side in ("encoder", "decoder"):
        for ffn, ffn_type in zip(getattr(subnet, f"{side}_ffn_embed_dim"), getattr(subnet, f"{side}_ffn_types")):
            cost += ffn * FFN_COST[ffn_type]
        for block in getattr(subnet, f"{side}_block_types"):
            cost += 20 * sum(BLOCK_COST[part] for part in block.split("+"))
    return float(cost)


def synthetic_loss(subnet: Subnet) -> float:
    """Lower for costlier subnets, plus a fixed per-subnet jitter (crc32: stable across processes)."""
    jitter = zlib.crc32(subnet.key().encode()) % 1000 / 1000
    return 10.0 - synthetic_cost(subnet) / 100 + jitter


class CountingFitness:
    """Synthetic fitness that records every subnet it is asked to evaluate."""

    def __init__(self, delay: float = 0.0) -> None:
        self.seen: list[str] = []
        self.delay = delay

    def __call__(self, subnets: list[Subnet]) -> list[float]:
        time.sleep(self.delay)
        self.seen.extend(s.key() for s in subnets)
        return [synthetic_loss(s) for s in subnets]


def costs() -> list[float]:
    rng = random.Random(0)
    return sorted(synthetic_cost(SPACE.sample(rng)) for _ in range(2000))


MEDIAN = costs()[1000]


def search(out: Path, limit: float = MEDIAN, config: EvolutionConfig = SMALL, fitness=None, **kwargs):
    fitness = fitness or CountingFitness()
    engine = Evolution(SPACE, fitness, [Constraint("cost", limit, synthetic_cost)], config, **kwargs)
    return engine, engine.run(out, progress=False)


def run_for_resume_test(out: str) -> None:
    """Entry point of the subprocess that the SIGKILL test kills mid-search."""
    config = EvolutionConfig(population=20, parents=5, mutations=8, crossovers=7, iterations=12, seed=3)
    search(Path(out), config=config, fitness=CountingFitness(delay=0.15))


def test_every_candidate_satisfies_the_constraint(tmp_path):
    fitness = CountingFitness()
    engine, result = search(tmp_path, fitness=fitness)
    by_key = {s.key(): s for s, _ in result.evaluated}
    assert len(by_key) == len(fitness.seen) > SMALL.population
    assert all(synthetic_cost(s) <= MEDIAN for s in by_key.values())
    assert all(SPACE.contains(s) for s in by_key.values())
    bred = [SPACE.decode(g) for g in engine.population]
    assert all(synthetic_cost(s) <= MEDIAN for s in bred)


def test_no_subnet_is_evaluated_twice_and_best_is_the_minimum(tmp_path):
    fitness = CountingFitness()
    _, result = search(tmp_path, fitness=fitness)
    assert len(fitness.seen) == len(set(fitness.seen))
    assert result.loss == min(loss for _, loss in result.evaluated)
    assert result.loss == synthetic_loss(result.best)


def test_search_improves_on_the_initial_population(tmp_path):
    engine, result = search(tmp_path)
    assert engine.history[-1]["best_loss"] < engine.history[0]["best_loss"]
    assert [h["best_loss"] for h in engine.history] == sorted((h["best_loss"] for h in engine.history), reverse=True)


def test_same_seed_same_search_other_seed_other_search(tmp_path):
    _, first = search(tmp_path / "a")
    _, second = search(tmp_path / "b")
    _, other = search(tmp_path / "c", config=EvolutionConfig(**{**SMALL.__dict__, "seed": 4}))
    assert first.best == second.best
    assert [s for s, _ in first.evaluated] == [s for s, _ in second.evaluated]
    assert (tmp_path / "a/evaluated.csv").read_text() == (tmp_path / "b/evaluated.csv").read_text()
    assert [s for s, _ in first.evaluated] != [s for s, _ in other.evaluated]


def test_outputs(tmp_path):
    _, result = search(tmp_path)
    assert SPACE.load_subnet(tmp_path / "best.yml") == result.best
    with open(tmp_path / "evaluated.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result.evaluated)
    for row, (subnet, loss) in zip(rows, result.evaluated):
        assert float(row["loss"]) == loss
        assert float(row["cost"]) == synthetic_cost(subnet)
        assert row["encoder_block_types"] == " ".join(subnet.encoder_block_types)
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["iteration"] == SMALL.iterations
    assert len(state["cache"]) == len(result.evaluated)


def test_resume_extends_to_the_uninterrupted_result(tmp_path):
    three = EvolutionConfig(**{**SMALL.__dict__, "iterations": 3})
    search(tmp_path / "resumed", config=three)
    fitness = CountingFitness()
    _, resumed = search(tmp_path / "resumed", fitness=fitness)
    _, straight = search(tmp_path / "straight")
    assert resumed.best == straight.best
    assert resumed.evaluated == straight.evaluated
    assert len(fitness.seen) < len(straight.evaluated)  # the cache came back from state.json


def test_rerunning_a_finished_search_evaluates_nothing(tmp_path):
    _, first = search(tmp_path)
    fitness = CountingFitness()
    _, again = search(tmp_path, fitness=fitness)
    assert fitness.seen == []
    assert again.best == first.best and again.evaluated == first.evaluated


def test_resume_refuses_a_different_search(tmp_path):
    search(tmp_path)
    with pytest.raises(ResumeError, match="config"):
        search(tmp_path, config=EvolutionConfig(**{**SMALL.__dict__, "seed": 9}))
    with pytest.raises(ResumeError, match="constraints"):
        search(tmp_path, limit=MEDIAN + 1)


def test_infeasible_budget_names_the_budget(tmp_path):
    cheapest = synthetic_cost(SPACE.smallest())
    with pytest.raises(NoFeasibleSubnetError, match=r"cost <= 1\b.*smallest has cost = "):
        search(tmp_path, limit=1.0)
    assert cheapest > 1.0


def test_loose_budget_returns_a_valid_subnet(tmp_path):
    largest = SPACE.largest()
    _, result = search(tmp_path, limit=synthetic_cost(largest))
    assert SPACE.contains(result.best)
    assert synthetic_cost(result.best) <= synthetic_cost(largest)


def test_budget_only_a_handful_of_subnets_meet(tmp_path):
    """The population fills up with repeats when fewer subnets than its size are feasible."""
    rng = random.Random(1)
    cheapest = min(synthetic_cost(SPACE.sample(rng)) for _ in range(5000))
    limit = min(cheapest, synthetic_cost(SPACE.smallest()))
    fitness = CountingFitness()
    config = EvolutionConfig(**{**SMALL.__dict__, "sample_tries": 500, "breed_tries": 20})
    _, result = search(tmp_path, limit=limit, config=config, fitness=fitness)
    assert synthetic_cost(result.best) <= limit
    assert all(synthetic_cost(s) <= limit for s, _ in result.evaluated)
    assert len(fitness.seen) == len(set(fitness.seen))


def test_multi_budget_shares_the_cache_and_matches_single_searches(tmp_path):
    all_costs = costs()
    limits = [all_costs[1500], all_costs[500], all_costs[1000]]
    fitness = CountingFitness()
    results = evolve_budgets(
        SPACE, fitness, Constraint("cost", math.nan, synthetic_cost), limits, tmp_path, SMALL, progress=False
    )
    assert [synthetic_cost(r.best) <= limit for r, limit in zip(results, sorted(limits))] == [True] * 3
    assert len(fitness.seen) == len(set(fitness.seen))
    union = {s.key() for r in results for s, _ in r.evaluated}
    assert len(fitness.seen) == len(union) < sum(len(r.evaluated) for r in results)
    for result, limit in zip(results, sorted(limits)):
        assert result.out_dir == tmp_path / f"budget-{limit:g}"
        assert (result.out_dir / "best.yml").exists()
        _, single = search(tmp_path / f"single-{limit:g}", limit=limit)
        assert single.best == result.best
    assert (tmp_path / "pareto.png").exists()


def test_pareto_front_matches_brute_force():
    rng = random.Random(0)
    points = [(rng.randint(0, 20), rng.randint(0, 20) / 2) for _ in range(200)]
    front = pareto_front(points)
    dominated = {
        i for i, (c, l) in enumerate(points)
        if any((c2 <= c and l2 <= l) and (c2, l2) != (c, l) for c2, l2 in points)
    }
    # duplicates of a front point are not dominated but the front keeps one of them
    expected = {points[i] for i in range(len(points)) if i not in dominated}
    assert {points[i] for i in front} == expected
    assert len(front) == len(expected)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="parents"):
        EvolutionConfig(population=5, parents=10)
    with pytest.raises(ValueError, match="mutation_prob"):
        EvolutionConfig(mutation_prob=1.5)
    with pytest.raises(ValueError, match="constraints"):
        Evolution(SPACE, CountingFitness(), [], SMALL)
