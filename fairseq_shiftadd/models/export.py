"""Export a subnet of a trained supernet as a standalone ``shiftadd_transformer`` checkpoint.

Supernet and standalone model are built from the same layer classes, and every elastic size is a
leading slice, so each parameter of the standalone model is the leading slice of the supernet
parameter with the same name. The exported model therefore computes exactly what the supernet
computes with that subnet active.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import torch
import yaml

from ..data.sized_dictionary import dictionary_of_size
from ..space import SearchSpace, Subnet
from .shiftadd_transformer import ShiftAddTransformer, ShiftAddTransformerConfig
from ..errors import InvalidInput


def supernet_space(state: dict[str, Any]) -> SearchSpace:
    """The search space stored in a supernet checkpoint."""
    model_cfg = state.get("cfg", {}).get("model") or {}
    text = model_cfg.get("search_space_config")
    if not text:
        raise InvalidInput("the checkpoint is not a shiftadd_supernet checkpoint (no search space stored in cfg.model)")
    return SearchSpace.from_dict(yaml.safe_load(text), name_hint="checkpoint")


def standalone_config(supernet_model_cfg: dict[str, Any], subnet: Subnet) -> dict[str, Any]:
    cfg = {k: v for k, v in supernet_model_cfg.items() if k not in ("search_space_config", "search_space_fingerprint")}
    cfg.update({"_name": "shiftadd_transformer", "arch": "shiftadd_transformer", "subnet": None, "subnet_config": subnet.to_yaml()})
    return cfg


def export_subnet(state: dict[str, Any], subnet: Subnet) -> dict[str, Any]:
    """A standalone checkpoint (same format as fairseq's) holding only ``subnet``'s weights."""
    space = supernet_space(state)
    space.validate(subnet)
    subnet = space.complete(subnet)
    supernet_weights = state["model"]
    model_cfg = standalone_config(dict(state["cfg"]["model"]), subnet)
    vocab = supernet_weights["encoder.embed_tokens.weight"].size(0)
    dictionary = dictionary_of_size(vocab)
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    fields = set(ShiftAddTransformerConfig.__dataclass_fields__)
    with torch.device("meta"):
        skeleton = ShiftAddTransformer.build_model(ShiftAddTransformerConfig(**{k: v for k, v in model_cfg.items() if k in fields}), task)
    supernet_weights = dict(supernet_weights)
    skeleton.upgrade_state_dict_named(supernet_weights, "")  # older operator parametrisations load as today's
    weights = {}
    for name, target in skeleton.state_dict().items():
        if name not in supernet_weights:
            raise InvalidInput(f"the supernet checkpoint has no weight {name} (trained with another --weight-sharing?)")
        source = supernet_weights[name]
        weights[name] = source[tuple(slice(0, size) for size in target.shape)].clone()
    exported = copy.copy(state)
    exported["cfg"] = dict(state["cfg"], model=model_cfg)
    exported["model"] = weights
    exported["last_optimizer_state"] = None
    exported["optimizer_history"] = [
        dict(entry, optimizer_name="none", lr_scheduler_state={}) for entry in state.get("optimizer_history", [])[-1:]
    ]
    exported["extra_state"] = {"exported_from_supernet": True, "subnet": subnet.to_yaml_dict()}
    return exported
