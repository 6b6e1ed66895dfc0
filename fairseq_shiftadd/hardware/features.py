"""What the latency predictor sees: subnet feature vectors.

Feature layout (HAT's scalars plus ShiftAddNAS's operator choices). There is one column group per
gene of :meth:`SearchSpace.genes`, in that order, so the layout is a pure function of the space:

- numeric genes (embed dims, layer nums, per-layer FFN dims, heads, encoder-decoder heads,
  arbitrary encoder-decoder attention): one column, ``value / max(|choices|)``; so the largest
  choice reads 1.0 and arbitrary-ende ``-1`` (last encoder layer only) reads a negative number;
- operator genes (per-layer block type and FFN type): ``len(choices)`` columns, one-hot over the
  space's candidate list.

Genes of layers beyond the subnet's active layer count are all zero. For ``configs/spaces/tiny.yml``
that gives 4 + 2x(1+1+7+3) + 2x(1+1+1+1+4+3) = 50 columns; :meth:`FeatureLayout.names` names them.

The measured dataset these features are computed for lives in :mod:`.latency_dataset`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn, Sequence

import numpy as np

from fairseq_shiftadd.space import SearchSpace, SpaceError, Subnet

@dataclass(frozen=True)
class _GeneColumns:
    """Where one gene's value lands: value -> (column, feature value)."""

    field: str
    layer: int | None
    table: dict[Any, tuple[int, float]]


class FeatureLayout:
    """The feature columns of one search space; build once, then encode many subnets."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self._genes: list[_GeneColumns] = []
        names: list[str] = []
        for gene in space.genes():
            if gene.is_operator:
                table = {choice: (len(names) + i, 1.0) for i, choice in enumerate(gene.choices)}
                names.extend(f"{gene.name}={choice}" for choice in gene.choices)
            else:
                scale = max(abs(choice) for choice in gene.choices)
                table = {choice: (len(names), choice / scale) for choice in gene.choices}
                names.append(gene.name)
            self._genes.append(_GeneColumns(gene.field, gene.layer, table))
        self.names: tuple[str, ...] = tuple(names)

    @property
    def dim(self) -> int:
        return len(self.names)

    def encode(self, subnets: Sequence[Subnet]) -> np.ndarray:
        """Features of many subnets: float32 [len(subnets), dim]; SpaceError for a subnet outside the space."""
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for index, subnet in enumerate(subnets):
            for gene in self._genes:
                value = getattr(subnet, gene.field)
                if gene.layer is not None:
                    if gene.layer >= len(value):
                        continue
                    value = value[gene.layer]
                try:
                    column, feature = gene.table[value]
                except (KeyError, TypeError):
                    self._raise_outside(subnet, index)
                rows.append(index)
                cols.append(column)
                values.append(feature)
            self._check_layer_counts(subnet, index)
        matrix = np.zeros((len(subnets), self.dim), dtype=np.float32)
        matrix[rows, cols] = values
        return matrix

    def _raise_outside(self, subnet: Subnet, index: int) -> NoReturn:
        self.space.validate(subnet, where=f"subnets[{index}]")
        raise SpaceError(f"subnets[{index}]: not a subnet of the search space {self.space.name}")

    @staticmethod
    def _check_layer_counts(subnet: Subnet, index: int) -> None:
        """Per-layer tuples must have one value per active layer (Subnet itself does not enforce it)."""
        for side in ("encoder", "decoder"):
            layers = getattr(subnet, f"{side}_layer_num")
            for field in ("ffn_embed_dim", "self_attention_heads", "block_types", "ffn_types"):
                count = len(getattr(subnet, f"{side}_{field}"))
                if count != layers:
                    raise SpaceError(f"subnets[{index}]: {side}_{field} has {count} values for {layers} {side} layers")


@lru_cache(maxsize=16)
def feature_layout(space: SearchSpace) -> FeatureLayout:
    return FeatureLayout(space)


def subnet_feature_matrix(space: SearchSpace, subnets: Sequence[Subnet]) -> np.ndarray:
    """Features of many subnets, float32 [N, feature_dim]; see the module docstring for the layout."""
    return feature_layout(space).encode(subnets)


def subnet_features(space: SearchSpace, subnet: Subnet) -> list[float]:
    """Features of one subnet (one row of :func:`subnet_feature_matrix`)."""
    return subnet_feature_matrix(space, [subnet])[0].tolist()
