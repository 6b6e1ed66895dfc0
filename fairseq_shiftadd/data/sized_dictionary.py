"""A placeholder fairseq Dictionary of a given size, for models built without data.

Costing, latency timing and subnet export build models whose only tie to the data is the
vocabulary size (the embedding and output-projection shapes); this gives them a dictionary.
"""
from __future__ import annotations

from fairseq.data import Dictionary


def dictionary_of_size(size: int) -> Dictionary:
    """A fairseq Dictionary of ``size`` symbols (specials included; never fewer than the specials)."""
    dictionary = Dictionary()
    for i in range(max(size - len(dictionary), 0)):
        dictionary.add_symbol(f"w{i}")
    return dictionary
