"""The latency predictor as the search calls it: a checkpoint of ``latency_mlp`` -> milliseconds per subnet.

``LatencyPredictor.from_checkpoint("checkpoints/checkpoint_best.pt").predict(subnets)`` builds
features for the whole batch at once and runs one forward pass, so scoring thousands of candidate
subnets costs milliseconds. The checkpoint carries its search space (task state) and the space's
fingerprint (model buffer); passing ``space=`` checks that the caller's space is the same one.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from fairseq import checkpoint_utils

from fairseq_shiftadd.hardware.features import feature_layout
from fairseq_shiftadd.models.latency_mlp import LatencyMLP
from fairseq_shiftadd.space import SearchSpace, SpaceError, Subnet
from ..errors import InvalidInput, MissingInput


class LatencyPredictor:
    def __init__(self, model: LatencyMLP, space: SearchSpace):
        fingerprint = space.fingerprint()
        if fingerprint != model.fingerprint:
            raise SpaceError(
                f"latency predictor was trained for another search space than {space.name} "
                f"(checkpoint fingerprint {model.fingerprint[:12]}, space fingerprint {fingerprint[:12]})"
            )
        self.model = model.eval()
        self.space = space
        self._layout = feature_layout(space)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, space: SearchSpace | None = None) -> "LatencyPredictor":
        """Load a ``fairseq-train --arch latency_mlp`` checkpoint (weights-only unpickling).

        Args:
            space: the caller's search space; it must be the one the predictor was trained for.
                Default: the space stored in the checkpoint.
        """
        if not os.path.isfile(path):
            raise MissingInput(f"latency predictor checkpoint {path} does not exist")
        state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
        stored_space = (state.get("task_state") or {}).get("search_space")
        if stored_space is None or "model" not in state:
            raise InvalidInput(f"{path} is not a latency_prediction checkpoint (no search space in its task state)")
        model = LatencyMLP.from_state_dict(state["model"])
        if space is None:
            space = SearchSpace.from_dict(stored_space, name_hint="checkpoint")
        return cls(model, space)

    @torch.inference_mode()
    def predict(self, subnets: Sequence[Subnet]) -> np.ndarray:
        """Predicted latency in ms, float64 [len(subnets)]; SpaceError for a subnet outside the space."""
        if not subnets:
            return np.zeros(0)
        features = torch.from_numpy(self._layout.encode(subnets))
        return self.model.to_ms(self.model(features)).double().numpy()
