"""Search spaces and subnet configurations, both read from YAML.

A *search space* lists the candidates of every choice (embed dims, per-layer block and FFN
operators, FFN dims, heads, layer counts, arbitrary encoder-decoder attention). A *subnet* picks
one value per choice. Subnet files use HAT's keys plus ShiftAddNAS's block-type keys, so the
public code's configs load unchanged; our own additions are the per-layer FFN operator keys.

Everything that samples, mutates or validates subnets goes through :class:`SearchSpace`, so the
supernet task, the latency predictor and the evolutionary search agree on one definition. The
names every layer shares (operators, weight-sharing modes, gene kinds) are defined here, once.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from .errors import InvalidInput
from .files import atomic_write_text

OPERATORS = ("mult", "shift", "add")  # what a linear position computes with
WEIGHT_SHARING_MODES = ("none", "plain", "heterogeneous")  # how the operators of one position share weights
ENCODER_BLOCKS = ("attn", "conv", "add", "shiftadd", "attn+conv", "attn+add", "attn+shiftadd")
DECODER_BLOCKS = ("attn", "attn+conv", "attn+add", "attn+shiftadd")
FFN_TYPES = OPERATORS
ENDE_ATTN_CHOICES = (-1, 1, 2)

# Gene kinds: an operator gene picks among named choices (one-hot for the latency predictor);
# every other gene is a size, ordered and numeric.
OPERATOR_GENE_FIELDS = frozenset(
    f"{side}_{kind}" for side in ("encoder", "decoder") for kind in ("block_types", "ffn_types")
)

# The public ShiftAddNAS code names blocks after fairseq modules; they are aliases of ours.
_PUBLIC_BLOCK_NAMES = {
    "self_attention": "attn",
    "lightweight_conv": "conv",
    "lightweight_add": "add",
    "lightweight_shiftadd": "shiftadd",
}


class SpaceError(InvalidInput):
    """A search space or subnet file that does not fit the schema; the message is one line."""


def canonical_block(name: str) -> str:
    """Map a block name (ours or the public code's) to ours, e.g. 'self_attention+lightweight_add'."""
    parts = [_PUBLIC_BLOCK_NAMES.get(part.strip(), part.strip()) for part in str(name).split("+")]
    return "+".join(parts)


def block_branch(block: str) -> str | None:
    """The lightweight branch of a block ('conv', 'add', 'shiftadd') or None for pure attention."""
    parts = block.split("+")
    branch = [p for p in parts if p != "attn"]
    return branch[0] if branch else None


def block_has_attention(block: str) -> bool:
    return "attn" in block.split("+")


@dataclass(frozen=True)
class Subnet:
    """One architecture of the space. Per-layer tuples have exactly the active layer count."""

    encoder_embed_dim: int
    decoder_embed_dim: int
    encoder_layer_num: int
    decoder_layer_num: int
    encoder_ffn_embed_dim: tuple[int, ...]
    decoder_ffn_embed_dim: tuple[int, ...]
    encoder_self_attention_heads: tuple[int, ...]
    decoder_self_attention_heads: tuple[int, ...]
    decoder_ende_attention_heads: tuple[int, ...]
    decoder_arbitrary_ende_attn: tuple[int, ...]
    encoder_block_types: tuple[str, ...]
    decoder_block_types: tuple[str, ...]
    encoder_ffn_types: tuple[str, ...]
    decoder_ffn_types: tuple[str, ...]
    # Fixed by the space, not searched; recorded so a standalone subnet rebuilds the same filters.
    # Empty in files of the public code: then the paper's kernel sizes apply.
    encoder_kernel_sizes: tuple[int, ...] = ()
    decoder_kernel_sizes: tuple[int, ...] = ()

    def kernel_size(self, side: str, layer: int) -> int:
        sizes = getattr(self, f"{side}_kernel_sizes")
        return sizes[layer] if sizes else PAPER_KERNEL_SIZES[min(layer, len(PAPER_KERNEL_SIZES) - 1)]

    def to_yaml_dict(self) -> dict[str, Any]:
        """The subnet in the public file format (HAT keys + block types + our FFN types)."""
        return {key: _plain(getattr(self, field)) for field, key in _SUBNET_KEYS.items() if getattr(self, field) != ()}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_yaml_dict(), sort_keys=False, default_flow_style=None)

    def key(self) -> str:
        """A stable string identity, used to cache fitness and to split datasets."""
        return yaml.safe_dump(self.to_yaml_dict(), sort_keys=True, default_flow_style=True).strip()


# dataclass field -> key in subnet YAML files (HAT's names; the last two are ours).
_SUBNET_KEYS = {
    "encoder_embed_dim": "encoder-embed-dim-subtransformer",
    "decoder_embed_dim": "decoder-embed-dim-subtransformer",
    "encoder_layer_num": "encoder-layer-num-subtransformer",
    "decoder_layer_num": "decoder-layer-num-subtransformer",
    "encoder_ffn_embed_dim": "encoder-ffn-embed-dim-all-subtransformer",
    "decoder_ffn_embed_dim": "decoder-ffn-embed-dim-all-subtransformer",
    "encoder_self_attention_heads": "encoder-self-attention-heads-all-subtransformer",
    "decoder_self_attention_heads": "decoder-self-attention-heads-all-subtransformer",
    "decoder_ende_attention_heads": "decoder-ende-attention-heads-all-subtransformer",
    "decoder_arbitrary_ende_attn": "decoder-arbitrary-ende-attn-all-subtransformer",
    "encoder_block_types": "encoder-block-types-all-subtransformer",
    "decoder_block_types": "decoder-block-types-all-subtransformer",
    "encoder_ffn_types": "encoder-ffn-types-all-subtransformer",
    "decoder_ffn_types": "decoder-ffn-types-all-subtransformer",
    "encoder_kernel_sizes": "encoder-kernel-sizes-all-subtransformer",
    "decoder_kernel_sizes": "decoder-kernel-sizes-all-subtransformer",
}
PAPER_KERNEL_SIZES = (3, 7, 15, 31, 31, 31)
_OPTIONAL_DEFAULTS = {  # keys older files lack, and what they mean
    "encoder_block_types": "attn",
    "decoder_block_types": "attn",
    "encoder_ffn_types": "mult",
    "decoder_ffn_types": "mult",
    "encoder_kernel_sizes": None,
    "decoder_kernel_sizes": None,
}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Gene:
    """One independent choice of the space: a name, its candidates, and where it lives."""

    name: str
    field: str
    layer: int | None  # None for a scalar field
    choices: tuple[Any, ...]

    @property
    def is_operator(self) -> bool:
        """True for a block-type or FFN-type choice (named, unordered), False for a size."""
        return self.field in OPERATOR_GENE_FIELDS


@dataclass(frozen=True)
class SideSpace:
    """Candidates for one side (encoder or decoder)."""

    embed_dim: tuple[int, ...]
    layer_num: tuple[int, ...]
    ffn_embed_dim: tuple[int, ...]
    self_attention_heads: tuple[int, ...]
    block_types: tuple[str, ...]
    ffn_types: tuple[str, ...]
    kernel_sizes: tuple[int, ...]  # one per layer position, fixed (not searched)
    ende_attention_heads: tuple[int, ...] = ()
    arbitrary_ende_attn: tuple[int, ...] = ()

    @property
    def max_layers(self) -> int:
        return max(self.layer_num)


@dataclass(frozen=True)
class SearchSpace:
    """A ShiftAddNAS search space; see ``configs/spaces/*.yml`` for the file format."""

    name: str
    encoder: SideSpace
    decoder: SideSpace
    path: str | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SearchSpace":
        raw = read_yaml(path, "search space file")
        return cls.from_dict(raw, name_hint=Path(path).stem, path=str(path))

    @classmethod
    def from_dict(cls, raw: Any, name_hint: str = "space", path: str | None = None) -> "SearchSpace":
        where = path or name_hint
        if not isinstance(raw, dict) or "encoder" not in raw or "decoder" not in raw:
            raise SpaceError(f"{where}: a search space needs 'encoder' and 'decoder' sections")
        unknown = set(raw) - {"name", "encoder", "decoder"}
        if unknown:
            raise SpaceError(f"{where}: unknown key '{sorted(unknown)[0]}' (allowed: name, encoder, decoder)")
        encoder = _read_side(raw["encoder"], "encoder", ENCODER_BLOCKS, where)
        decoder = _read_side(raw["decoder"], "decoder", DECODER_BLOCKS, where)
        return cls(name=str(raw.get("name", name_hint)), encoder=encoder, decoder=decoder, path=path)

    def to_dict(self) -> dict[str, Any]:
        """The space in the file format (``from_dict(to_dict())`` is the same space)."""
        return {"name": self.name, "encoder": _side_dict(self.encoder, "encoder"), "decoder": _side_dict(self.decoder, "decoder")}

    def fingerprint(self) -> str:
        """SHA-256 hex of what defines the subnets: every gene's choices, and the kernel sizes.

        Two spaces are "the same space" (a supernet, a latency predictor or a search state can be
        reused) iff their fingerprints are equal. Name and file path are left out, so a renamed
        copy of a space keeps its checkpoints.
        """
        identity = {
            "genes": [[gene.name, list(gene.choices)] for gene in self.genes()],
            "kernel_sizes": [list(self.encoder.kernel_sizes), list(self.decoder.kernel_sizes)],
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def check_trained_on(self, trained: "SearchSpace", given: str, checkpoint: str = "this checkpoint") -> None:
        """Raise :class:`SpaceError` unless this space (the user's, named ``given``) is ``trained``, the
        space ``checkpoint`` was trained on; the message names both."""
        if self.fingerprint() != trained.fingerprint():
            raise SpaceError(
                f"{checkpoint} was trained on space {trained.name} (fingerprint {trained.fingerprint()[:12]}), "
                f"not on {given}: space {self.name} (fingerprint {self.fingerprint()[:12]})"
            )

    # ------------------------------------------------------------------ genes
    def genes(self) -> list[Gene]:
        """Every independent choice, in a fixed order (the genome of the evolutionary search)."""
        enc, dec = self.encoder, self.decoder
        genes = [
            Gene("encoder.embed_dim", "encoder_embed_dim", None, enc.embed_dim),
            Gene("decoder.embed_dim", "decoder_embed_dim", None, dec.embed_dim),
            Gene("encoder.layer_num", "encoder_layer_num", None, enc.layer_num),
            Gene("decoder.layer_num", "decoder_layer_num", None, dec.layer_num),
        ]
        per_layer = [
            ("encoder", enc, "ffn_embed_dim", enc.ffn_embed_dim),
            ("encoder", enc, "self_attention_heads", enc.self_attention_heads),
            ("encoder", enc, "block_types", enc.block_types),
            ("encoder", enc, "ffn_types", enc.ffn_types),
            ("decoder", dec, "ffn_embed_dim", dec.ffn_embed_dim),
            ("decoder", dec, "self_attention_heads", dec.self_attention_heads),
            ("decoder", dec, "ende_attention_heads", dec.ende_attention_heads),
            ("decoder", dec, "arbitrary_ende_attn", dec.arbitrary_ende_attn),
            ("decoder", dec, "block_types", dec.block_types),
            ("decoder", dec, "ffn_types", dec.ffn_types),
        ]
        for side, side_space, attr, choices in per_layer:
            for layer in range(side_space.max_layers):
                genes.append(Gene(f"{side}.{attr}.{layer}", f"{side}_{attr}", layer, tuple(choices)))
        return genes

    def encode(self, subnet: Subnet) -> list[Any]:
        """The genome of a subnet; layers beyond the active count repeat the last active value."""
        values = []
        for gene in self.genes():
            value = getattr(subnet, gene.field)
            if gene.layer is not None:
                value = value[min(gene.layer, len(value) - 1)]
            values.append(value)
        return values

    def decode(self, genome: Sequence[Any]) -> Subnet:
        """Build a subnet from a genome (inactive layers' genes are ignored)."""
        genes = self.genes()
        scalars = {g.field: v for g, v in zip(genes, genome) if g.layer is None}
        lists: dict[str, list[Any]] = {}
        for gene, value in zip(genes, genome):
            if gene.layer is not None:
                lists.setdefault(gene.field, []).append(value)
        layers = {"encoder": scalars["encoder_layer_num"], "decoder": scalars["decoder_layer_num"]}
        for field, values in lists.items():
            scalars[field] = tuple(values[: layers[field.split("_", 1)[0]]])
        scalars["encoder_kernel_sizes"] = self.encoder.kernel_sizes[: layers["encoder"]]
        scalars["decoder_kernel_sizes"] = self.decoder.kernel_sizes[: layers["decoder"]]
        return Subnet(**scalars)

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: random.Random) -> Subnet:
        """A subnet drawn uniformly: every gene independently uniform over its candidates."""
        return self.decode([rng.choice(gene.choices) for gene in self.genes()])

    def sample_for_update(self, seed: int, num_updates: int) -> Subnet:
        """The subnet of one training update, a pure function of (seed, update).

        Every data-parallel rank calls this with the same arguments and so trains the same
        subnet without any communication.
        """
        return self.sample(random.Random(f"shiftadd:{seed}:{num_updates}"))

    def largest(self) -> Subnet:
        return self._extreme(max)

    def smallest(self) -> Subnet:
        return self._extreme(min)

    def _extreme(self, pick) -> Subnet:
        """Largest/smallest sizes; operators: attention+mult for largest, the first listed for smallest."""
        genome = []
        for gene in self.genes():
            if gene.is_operator:
                genome.append(gene.choices[0] if pick is max else gene.choices[-1])
            else:
                genome.append(pick(gene.choices))
        return self.decode(genome)

    def representative_hybrid(self) -> Subnet:
        """A fixed hybrid (middle sizes, operators cycling through the choices) for validation."""
        genome = []
        for index, gene in enumerate(self.genes()):
            if gene.layer is not None and gene.is_operator:
                genome.append(gene.choices[gene.layer % len(gene.choices)])
            else:
                ordered = sorted(gene.choices)
                genome.append(ordered[len(ordered) // 2])
        return self.decode(genome)

    # ------------------------------------------------------------------ subnet files
    def load_subnet(self, path: str | os.PathLike) -> Subnet:
        return self.subnet_from_dict(read_yaml(path, "subnet file"), where=str(path))

    def subnet_from_dict(self, raw: Any, where: str = "subnet") -> Subnet:
        """Validate a subnet mapping against this space; errors name the field, value and choices."""
        subnet = parse_subnet(raw, where=where, max_layers=(self.encoder.max_layers, self.decoder.max_layers))
        self.validate(subnet, where=where)
        return self.complete(subnet)

    def validate(self, subnet: Subnet, where: str = "subnet") -> None:
        for side in ("encoder", "decoder"):
            given = getattr(subnet, f"{side}_kernel_sizes")
            expected = getattr(self, side).kernel_sizes[: len(given)]
            if given and tuple(given) != tuple(expected):
                raise SpaceError(
                    f"{where}: {_SUBNET_KEYS[side + '_kernel_sizes']} = {list(given)} differs from the search "
                    f"space {self.name} (expected {list(expected)})"
                )
        for gene in self.genes():
            value = getattr(subnet, gene.field)
            if gene.layer is not None:
                if gene.layer >= len(value):
                    continue
                value = value[gene.layer]
            if value not in gene.choices:
                key = _SUBNET_KEYS[gene.field]
                at = f"[{gene.layer}]" if gene.layer is not None else ""
                raise SpaceError(
                    f"{where}: {key}{at} = {value!r} is not in the search space "
                    f"{self.name} (allowed: {', '.join(map(str, gene.choices))})"
                )

    def complete(self, subnet: Subnet) -> Subnet:
        """The subnet with the space's kernel sizes filled in (files of the public code lack them)."""
        return dataclasses.replace(
            subnet,
            encoder_kernel_sizes=self.encoder.kernel_sizes[: subnet.encoder_layer_num],
            decoder_kernel_sizes=self.decoder.kernel_sizes[: subnet.decoder_layer_num],
        )

    def contains(self, subnet: Subnet) -> bool:
        try:
            self.validate(subnet)
        except SpaceError:
            return False
        return True

    def iter_layers(self, subnet: Subnet) -> Iterator[tuple[str, int]]:
        for layer in range(subnet.encoder_layer_num):
            yield "encoder", layer
        for layer in range(subnet.decoder_layer_num):
            yield "decoder", layer


def parse_subnet(raw: Any, where: str = "subnet", max_layers: tuple[int, int] | None = None) -> Subnet:
    """Read a subnet mapping (HAT or ShiftAddNAS keys) without a space: schema checks only."""
    if not isinstance(raw, dict):
        raise SpaceError(f"{where}: a subnet must be a mapping of the keys {', '.join(_SUBNET_KEYS.values())}")
    known = set(_SUBNET_KEYS.values())
    for key in raw:
        if key not in known:
            raise SpaceError(f"{where}: unknown key '{key}' (allowed: {', '.join(_SUBNET_KEYS.values())})")
    values: dict[str, Any] = {}
    for field in ("encoder_embed_dim", "decoder_embed_dim", "encoder_layer_num", "decoder_layer_num"):
        key = _SUBNET_KEYS[field]
        if key not in raw:
            raise SpaceError(f"{where}: missing key '{key}'")
        if not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] < 1:
            raise SpaceError(f"{where}: {key} = {raw[key]!r} must be a positive integer")
        values[field] = raw[key]
    for field in (f.name for f in dataclasses.fields(Subnet)):
        if field in values:
            continue
        side = field.split("_", 1)[0]
        layers = values[f"{side}_layer_num"]
        key = _SUBNET_KEYS[field]
        if key not in raw:
            if field not in _OPTIONAL_DEFAULTS:
                raise SpaceError(f"{where}: missing key '{key}'")
            default = _OPTIONAL_DEFAULTS[field]
            values[field] = () if default is None else (default,) * layers
            continue
        items = raw[key]
        if not isinstance(items, list):
            raise SpaceError(f"{where}: {key} must be a list with one value per {side} layer, got {items!r}")
        longest = None if max_layers is None else max_layers[0 if side == "encoder" else 1]
        if len(items) < layers or (longest is not None and len(items) > max(longest, layers)):
            expected = f"{layers}" if longest is None or longest == layers else f"{layers} to {longest}"
            raise SpaceError(f"{where}: {key} has {len(items)} values, expected {expected} (one per {side} layer)")
        items = items[:layers]
        if field.endswith("block_types"):
            items = [canonical_block(item) for item in items]
        values[field] = tuple(items)
    subnet = Subnet(**values)
    check_subnet(subnet, where)
    return subnet


# The largest sizes a subnet may have (docs/architecture.md, "Subnet files"): far above any
# published model (Transformer-big: d 1024, FFN 4096, 16 heads, 6 layers), low enough that costing
# on the accelerator model and building a model stay within seconds and bounded memory.
SIZE_LIMITS = {"embed_dim": 8192, "ffn_embed_dim": 65536, "layer_num": 64, "heads": 256, "kernel_size": 255}


def _size_limit(field: str) -> int:
    """The :data:`SIZE_LIMITS` entry of a :class:`Subnet` field, e.g. ``decoder_ende_attention_heads`` -> heads."""
    kind = next((kind for kind in ("ffn_embed_dim", "heads", "kernel_size") if kind in field), field.split("_", 1)[1])
    return SIZE_LIMITS[kind]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def attention_width(block: str, embed_dim: int) -> int:
    """Channels the self-attention of ``block`` sees: all, or the first half in a two-branch block."""
    return embed_dim if block_branch(block) is None else embed_dim // 2


def branch_width(block: str, embed_dim: int) -> int:
    """Channels the lightweight branch of ``block`` sees: all, or the second half in a two-branch block."""
    return embed_dim if not block_has_attention(block) else embed_dim - embed_dim // 2


def check_subnet(subnet: Subnet, where: str = "subnet", lightweight_heads: int | None = None) -> None:
    """Raise :class:`SpaceError` (one line) unless a model can be built and run for ``subnet``.

    Checks types, positive sizes within :data:`SIZE_LIMITS`, the block and FFN types each side
    allows, heads dividing the width they split, arbitrary encoder-decoder attention within the
    encoder's depth and odd encoder kernel sizes; with ``lightweight_heads`` (the model's filter
    heads), also that they divide each lightweight branch's channels. A search space adds its
    value sets on top (:meth:`SearchSpace.validate`).
    """
    def fail(field: str, layer: int | None, value: Any, expected: str) -> None:
        at = "" if layer is None else f"[{layer}]"
        raise SpaceError(f"{where}: {_SUBNET_KEYS[field]}{at} = {value!r} {expected}")

    for field in ("encoder_embed_dim", "decoder_embed_dim", "encoder_layer_num", "decoder_layer_num"):
        value = getattr(subnet, field)
        if not _is_int(value) or not 1 <= value <= _size_limit(field):
            fail(field, None, value, f"must be an integer from 1 to {_size_limit(field)}")
    allowed_names = {
        "encoder_block_types": ENCODER_BLOCKS, "decoder_block_types": DECODER_BLOCKS,
        "encoder_ffn_types": FFN_TYPES, "decoder_ffn_types": FFN_TYPES,
    }
    for field, allowed in allowed_names.items():
        for layer, value in enumerate(getattr(subnet, field)):
            if value not in allowed:
                fail(field, layer, value, f"is not a {field.split('_')[0]} choice (allowed: {', '.join(allowed)})")
    for field in ("encoder_ffn_embed_dim", "decoder_ffn_embed_dim", "encoder_self_attention_heads",
                  "decoder_self_attention_heads", "decoder_ende_attention_heads", "encoder_kernel_sizes", "decoder_kernel_sizes"):
        for layer, value in enumerate(getattr(subnet, field)):
            if not _is_int(value) or not 1 <= value <= _size_limit(field):
                fail(field, layer, value, f"must be an integer from 1 to {_size_limit(field)}")
    for layer, value in enumerate(subnet.encoder_kernel_sizes):
        if value % 2 == 0:
            fail("encoder_kernel_sizes", layer, value, "must be odd ('same' padding)")
    for layer, value in enumerate(subnet.decoder_arbitrary_ende_attn):
        if value not in ENDE_ATTN_CHOICES or (value != -1 and value + 1 > subnet.encoder_layer_num):
            fail("decoder_arbitrary_ende_attn", layer, value,
                 f"must be -1 (last encoder layer) or k in 1, 2 with k + 1 <= {subnet.encoder_layer_num} encoder layers")
    for side in ("encoder", "decoder"):
        dim = getattr(subnet, f"{side}_embed_dim")
        blocks = getattr(subnet, f"{side}_block_types")
        for layer, (block, heads) in enumerate(zip(blocks, getattr(subnet, f"{side}_self_attention_heads"))):
            width = attention_width(block, dim)
            if block_has_attention(block) and (width == 0 or width % heads):
                fail(f"{side}_self_attention_heads", layer, heads, f"must divide the {width} channels {block} gives attention at embed dim {dim}")
            if lightweight_heads and block_branch(block) and branch_width(block, dim) % lightweight_heads:
                fail(f"{side}_block_types", layer, block,
                     f"gives its branch {branch_width(block, dim)} channels at embed dim {dim}, not divisible by {lightweight_heads} filter heads")
    for layer, heads in enumerate(subnet.decoder_ende_attention_heads):
        if subnet.decoder_embed_dim % heads:
            fail("decoder_ende_attention_heads", layer, heads, f"must divide the decoder embed dim {subnet.decoder_embed_dim}")


def load_subnet_file(path: str | os.PathLike) -> Subnet:
    """Read a subnet file without a space (schema checks, block-name aliases)."""
    return parse_subnet(read_yaml(path, "subnet file"), where=str(path))


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """Parse a YAML file; a missing file or bad YAML is one line naming ``what`` and the path."""
    path = Path(path)
    if not path.is_file():
        raise SpaceError(f"{what} {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpaceError(f"{what} {path} is not valid YAML: {str(err).splitlines()[0]}") from None


def write_subnet(subnet: Subnet, path: str | os.PathLike) -> None:
    """Write a subnet YAML atomically (a reader never sees half a file)."""
    atomic_write_text(path, subnet.to_yaml())


# SideSpace attribute -> key in search space files, in file order.
_SIDE_KEYS = {
    "embed_dim": "embed-dim",
    "layer_num": "layer-num",
    "ffn_embed_dim": "ffn-embed-dim",
    "self_attention_heads": "self-attention-heads",
    "block_types": "block-types",
    "ffn_types": "ffn-types",
    "kernel_sizes": "kernel-sizes",
}
_DECODER_KEYS = {"ende_attention_heads": "ende-attention-heads", "arbitrary_ende_attn": "arbitrary-ende-attn"}


def _side_keys(side: str) -> dict[str, str]:
    return {**_SIDE_KEYS, **(_DECODER_KEYS if side == "decoder" else {})}


def _side_dict(side_space: SideSpace, side: str) -> dict[str, list]:
    return {key: list(getattr(side_space, attr)) for attr, key in _side_keys(side).items()}


def _read_side(raw: Any, side: str, allowed_blocks: tuple[str, ...], where: str) -> SideSpace:
    if not isinstance(raw, dict):
        raise SpaceError(f"{where}: '{side}' must be a mapping")
    fields = {key: attr for attr, key in _side_keys(side).items()}
    for key in raw:
        if key not in fields:
            raise SpaceError(f"{where}: unknown key '{side}.{key}' (allowed: {', '.join(fields)})")
    values: dict[str, tuple] = {}
    for key, attr in fields.items():
        if key not in raw:
            raise SpaceError(f"{where}: missing key '{side}.{key}'")
        items = raw[key]
        if not isinstance(items, list) or not items:
            raise SpaceError(f"{where}: {side}.{key} must be a non-empty list, got {items!r}")
        if attr == "block_types":
            items = [canonical_block(item) for item in items]
            bad = [item for item in items if item not in allowed_blocks]
            if bad:
                raise SpaceError(f"{where}: {side}.block-types has {bad[0]!r} (allowed: {', '.join(allowed_blocks)})")
        elif attr == "ffn_types":
            bad = [item for item in items if item not in FFN_TYPES]
            if bad:
                raise SpaceError(f"{where}: {side}.ffn-types has {bad[0]!r} (allowed: {', '.join(FFN_TYPES)})")
        elif attr == "arbitrary_ende_attn":
            bad = [item for item in items if item not in ENDE_ATTN_CHOICES]
            if bad:
                raise SpaceError(f"{where}: {side}.arbitrary-ende-attn has {bad[0]!r} (allowed: -1, 1, 2)")
        else:
            bad = [item for item in items if not isinstance(item, int) or isinstance(item, bool) or item < 1]
            if bad:
                raise SpaceError(f"{where}: {side}.{key} has {bad[0]!r}, expected positive integers")
        values[attr] = tuple(items)
    if len(values["kernel_sizes"]) < max(values["layer_num"]):
        raise SpaceError(
            f"{where}: {side}.kernel-sizes has {len(values['kernel_sizes'])} values, "
            f"expected one per layer ({max(values['layer_num'])})"
        )
    if any(k % 2 == 0 for k in values["kernel_sizes"]) and side == "encoder":
        raise SpaceError(f"{where}: encoder.kernel-sizes must be odd for 'same' padding, got {list(values['kernel_sizes'])}")
    for dim in values["embed_dim"]:
        for heads in values["self_attention_heads"] + values.get("ende_attention_heads", ()):
            if dim % (2 * heads):
                raise SpaceError(
                    f"{where}: {side}.embed-dim {dim} is not divisible by 2 x {heads} heads "
                    "(two-branch blocks give attention half the channels)"
                )
    return SideSpace(**values)
