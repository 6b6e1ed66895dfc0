"""Export a subnet of a trained supernet as a standalone ``shiftadd_transformer`` checkpoint.

Supernet and standalone model are built from the same layer classes, and every elastic size is a
leading slice, so each parameter of the standalone model is the leading slice of the supernet
parameter with the same name. The exported model therefore computes exactly what the supernet
computes with that subnet active.

Under plain or heterogeneous sharing the supernet keeps one weight per linear position for all
its operators. By default the export converts it to the ``none`` layout of ``shiftadd_transformer``
(one weight per operator, :meth:`OperatorLinear.load_shared`), so the exported model fine-tunes
with the standalone model's default options (``--weight-sharing none``, what ``shiftadd-retrain``
uses) and computes what the supernet computes up to float rounding of the add weights' gain.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import torch
import yaml

from ..data.sized_dictionary import dictionary_of_size
from ..errors import InvalidInput
from ..modules.lightweight_branch import LightweightBranches
from ..modules.operator_linear import OperatorLinear
from ..space import SearchSpace, Subnet
from .shiftadd_transformer import ShiftAddTransformer, ShiftAddTransformerConfig


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


def build_standalone(model_cfg: dict[str, Any], vocab: int) -> ShiftAddTransformer:
    """The ``shiftadd_transformer`` of ``model_cfg`` (a checkpoint's cfg.model) over a ``vocab``-word dictionary."""
    dictionary = dictionary_of_size(vocab)
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    fields = set(ShiftAddTransformerConfig.__dataclass_fields__)
    return ShiftAddTransformer.build_model(ShiftAddTransformerConfig(**{k: v for k, v in model_cfg.items() if k in fields}), task)


def unshared_weights(model_cfg: dict[str, Any], weights: dict[str, torch.Tensor], vocab: int) -> dict[str, torch.Tensor]:
    """``weights`` of the standalone model of ``model_cfg`` (plain or heterogeneous sharing) as the weights of
    the same model under ``--weight-sharing none``, which computes what it computes."""
    dtype = weights["encoder.embed_tokens.weight"].dtype
    shared = build_standalone(model_cfg, vocab).to(dtype)
    shared.load_state_dict(weights)
    model = build_standalone(dict(model_cfg, weight_sharing="none"), vocab).to(dtype)
    missing = set(model.load_state_dict(weights, strict=False).missing_keys)  # every weight but the shared layers'
    sources = dict(shared.named_modules())
    for name, module in model.named_modules():
        if isinstance(module, (OperatorLinear, LightweightBranches)):
            module.load_shared(sources[name])
            missing = {key for key in missing if not key.startswith(name + ".")}
    if missing:
        raise RuntimeError(f"weights of the 'none' layout not taken from the shared model: {sorted(missing)}")
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def export_subnet(state: dict[str, Any], subnet: Subnet, keep_weight_sharing: bool = False) -> dict[str, Any]:
    """A standalone checkpoint (same format as fairseq's) holding only ``subnet``'s weights, in the
    ``none`` layout unless ``keep_weight_sharing`` (then in the supernet's own)."""
    space = supernet_space(state)
    space.validate(subnet)
    subnet = space.complete(subnet)
    supernet_weights = state["model"]
    model_cfg = standalone_config(dict(state["cfg"]["model"]), subnet)
    vocab = supernet_weights["encoder.embed_tokens.weight"].size(0)
    with torch.device("meta"):
        skeleton = build_standalone(model_cfg, vocab)
    supernet_weights = dict(supernet_weights)
    skeleton.upgrade_state_dict_named(supernet_weights, "")  # older operator parametrisations load as today's
    weights = {}
    for name, target in skeleton.state_dict().items():
        if name not in supernet_weights:
            raise InvalidInput(f"the supernet checkpoint has no weight {name} (trained with another --weight-sharing?)")
        source = supernet_weights[name]
        weights[name] = source[tuple(slice(0, size) for size in target.shape)].clone()
    if not keep_weight_sharing and model_cfg.get("weight_sharing", "none") != "none":
        weights = unshared_weights(model_cfg, weights, vocab)
        model_cfg["weight_sharing"] = "none"
    exported = copy.copy(state)
    exported["cfg"] = dict(state["cfg"], model=model_cfg)
    exported["model"] = weights
    exported["last_optimizer_state"] = None
    exported["optimizer_history"] = [
        dict(entry, optimizer_name="none", lr_scheduler_state={}) for entry in state.get("optimizer_history", [])[-1:]
    ]
    exported["extra_state"] = {"exported_from_supernet": True, "subnet": subnet.to_yaml_dict()}
    return exported
