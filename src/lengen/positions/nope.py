"""nope: no position information at all; causal masking alone tells tokens apart (Kazemnejad et al.)."""

from lengen.positions.base import PositionScheme, register_scheme


@register_scheme("nope")
class NoPE(PositionScheme):
    """No positional encoding: order is only implicit in the causal mask."""

    shift_invariant = True
