"""Vocabulary sizes: a binarized data dir's, and a placeholder fairseq Dictionary of a given size.

Costing, latency timing and subnet export build models whose only tie to the data is the
vocabulary size (the embedding and output-projection shapes); this gives them a dictionary.
"""
from __future__ import annotations

from pathlib import Path

from fairseq.data import Dictionary

from ..errors import InvalidInput, MissingInput


MAX_VOCAB_SIZE = 1_000_000  # far above any subword vocabulary; keeps a placeholder dictionary within a second


def dictionary_of_size(size: int) -> Dictionary:
    """A fairseq Dictionary of ``size`` symbols (specials included; never fewer than the specials)."""
    if not 1 <= size <= MAX_VOCAB_SIZE:
        raise InvalidInput(f"vocabulary size {size} must be from 1 to {MAX_VOCAB_SIZE:,}")
    dictionary = Dictionary()
    for i in range(max(size - len(dictionary), 0)):
        dictionary.add_symbol(f"w{i}")
    return dictionary


def data_vocab_size(data: str | Path) -> int:
    """The largest dictionary of a binarized data dir (the joined one when source and target share)."""
    paths = sorted(Path(data).glob("dict.*.txt"))
    if not paths:
        raise MissingInput(f"data directory {data} has no dict.*.txt (is it fairseq-preprocess output?)")
    return max(len(Dictionary.load(str(path))) for path in paths)


def checkpoint_vocab_size(path: str | Path) -> int:
    """The vocabulary size a fairseq translation checkpoint was trained with (its encoder embedding's rows)."""
    import torch

    if not Path(path).is_file():
        raise MissingInput(f"checkpoint {path} does not exist")
    model = torch.load(path, map_location="cpu", weights_only=True).get("model", {})
    embedding = model.get("encoder.embed_tokens.weight")
    if embedding is None:
        raise MissingInput(f"checkpoint {path} has no encoder.embed_tokens.weight (is it a translation model?)")
    return int(embedding.shape[0])
