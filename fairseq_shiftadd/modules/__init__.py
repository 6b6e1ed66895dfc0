"""Operators: shift and add layers (the multiplication baselines are nn.Linear and fairseq's LightweightConv)."""
from fairseq_shiftadd.modules.add_conv import AddConv1d
from fairseq_shiftadd.modules.add_linear import AddLinear, add_linear
from fairseq_shiftadd.modules.kernels import kernels_available
from fairseq_shiftadd.modules.shift_linear import ShiftLinear, min_shift, power_of_two

__all__ = ["AddConv1d", "AddLinear", "ShiftLinear", "add_linear", "kernels_available", "min_shift", "power_of_two"]
