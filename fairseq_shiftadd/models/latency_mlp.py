"""fairseq model/arch ``latency_mlp``: HAT's latency predictor, an MLP from subnet features to latency.

The model predicts the *normalised* latency; it carries the train split's mean/std (ms) and the
search space's fingerprint as buffers, so a checkpoint alone turns features into milliseconds and
knows which space its features belong to.
"""

from dataclasses import dataclass, field

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model
from torch import nn
from ..errors import InvalidInput


@dataclass
class LatencyMLPConfig(FairseqDataclass):
    hidden_dims: str = field(
        default="400,400,400", metadata={"help": "comma-separated hidden layer widths, ReLU after each"}
    )


def parse_hidden_dims(text: str) -> list[int]:
    try:
        dims = [int(part) for part in str(text).split(",")]
    except ValueError:
        dims = []
    if not dims or any(dim < 1 for dim in dims):
        raise InvalidInput(f"--hidden-dims must be comma-separated positive integers, e.g. 400,400,400; got {text!r}")
    return dims


@register_model("latency_mlp", dataclass=LatencyMLPConfig)
class LatencyMLP(BaseFairseqModel):
    """features [B, input_dim] -> normalised latency [B]."""

    def __init__(self, input_dim: int, hidden_dims: list[int], latency_mean: float, latency_std: float, fingerprint: str):
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("latency_mean", torch.tensor(latency_mean, dtype=torch.float32))
        self.register_buffer("latency_std", torch.tensor(latency_std, dtype=torch.float32))
        self.register_buffer("space_fingerprint", torch.tensor(list(bytes.fromhex(fingerprint)), dtype=torch.uint8))

    @classmethod
    def build_model(cls, cfg: LatencyMLPConfig, task) -> "LatencyMLP":
        """Sizes and normalisation come from the ``latency_prediction`` task."""
        return cls(task.feature_dim, parse_hidden_dims(cfg.hidden_dims), task.latency_mean, task.latency_std, task.fingerprint)

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> "LatencyMLP":
        """Rebuild from saved weights alone: layer widths are read off the weight shapes."""
        weights = sorted(
            (int(name.split(".")[1]), tensor) for name, tensor in state_dict.items()
            if name.startswith("net.") and name.endswith(".weight")
        )
        if not weights or "space_fingerprint" not in state_dict:
            raise InvalidInput("state_dict is not a latency_mlp model (no net.*.weight or space_fingerprint)")
        hidden = [tensor.shape[0] for _, tensor in weights[:-1]]
        model = cls(weights[0][1].shape[1], hidden, 0.0, 1.0, bytes(state_dict["space_fingerprint"].tolist()).hex())
        model.load_state_dict(state_dict)
        return model

    @property
    def fingerprint(self) -> str:
        return bytes(self.space_fingerprint.tolist()).hex()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)

    def to_ms(self, normalised: torch.Tensor) -> torch.Tensor:
        return normalised * self.latency_std + self.latency_mean

    def max_positions(self) -> None:
        return None
