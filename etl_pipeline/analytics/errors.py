"""Why a panel cannot be used for a synthetic-control fit, and how messages name the offending values.

Every error names the offending unit(s), time(s), column or predictor, listing at most :data:`SHOWN` of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: How many offending values an error message lists before "...".
SHOWN = 5


class PanelError(ValueError):
    """The panel cannot be used for a synthetic-control fit."""


class UnknownUnitError(PanelError):
    """The treated unit or a requested donor is not in the panel."""


class EmptyPrePeriodError(PanelError):
    """The treated unit has no observation before the intervention."""


class DonorGapError(PanelError):
    """A donor lacks an outcome at times the treated unit has."""


class DuplicateObservationError(PanelError):
    """A (unit, time) pair occurs more than once."""


class PredictorError(PanelError):
    """A predictor cannot be computed or used: unknown column, a unit without values in its window, a window
    reaching the intervention, or the same value for every unit (it cannot be standardised)."""


def show(value: Any) -> str:
    """A value as an error message prints it: strings quoted, dates without a midnight time."""
    if isinstance(value, str):
        return repr(value)
    if hasattr(value, "normalize") and hasattr(value, "date") and value == value.normalize():
        return str(value.date())
    return str(value)


def preview(values: Sequence[Any]) -> str:
    """The first :data:`SHOWN` values, then '... (N in all)'."""
    shown = ", ".join(show(v) for v in values[:SHOWN])
    return shown + (f", ... ({len(values)} in all)" if len(values) > SHOWN else "")
