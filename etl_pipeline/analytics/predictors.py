"""Predictors of a synthetic control: covariate summaries over chosen periods (Abadie, Diamond & Hainmueller 2010;
the ``predictors``/``special.predictors`` of R's Synth, Abadie, Diamond & Hainmueller 2011, JSS 42(13)).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from etl_pipeline.analytics.errors import PredictorError, preview, show

Op = Literal["mean", "median", "min", "max", "sum"]
OPS: tuple[str, ...] = ("mean", "median", "min", "max", "sum")


@dataclass(frozen=True)
class Predictor:
    """One row of the predictor matrix: ``op`` of ``column`` over the periods ``start <= time <= end``.

    ``start``/``end`` are compared with the panel's time column (so a Timestamp for datetimes, an int for
    integer periods); NaNs in the window are skipped. An outcome at one period (Synth's "special predictor"
    of a lagged outcome) is ``Predictor(outcome, t, t)``. ``name`` labels it in tables (default: generated).
    """

    column: str
    start: Any
    end: Any
    op: Op = "mean"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise PredictorError(f"predictor {self.label!r}: unknown op {self.op!r}; expected one of {list(OPS)}")
        if self.end < self.start:
            raise PredictorError(f"predictor {self.label!r}: its window ends ({show(self.end)}) before it starts")

    @property
    def label(self) -> str:
        """``name``, else e.g. 'mean confirmed 2020-03-01..2020-03-31' or 'confirmed 2020-03-31'."""
        if self.name is not None:
            return self.name
        if self.start == self.end:
            return f"{self.column} {show(self.start)}"
        return f"{self.op} {self.column} {show(self.start)}..{show(self.end)}"


def predictor_matrix(
    panel: pd.DataFrame, *, unit: str, time: str, units: Sequence[Hashable], predictors: Sequence[Predictor]
) -> pd.DataFrame:
    """The predictors of ``units``, unscaled: a (k predictors x units) frame indexed by :attr:`Predictor.label`,
    columns in the order of ``units``.

    Raises :class:`PredictorError` naming the predictor for a column the panel lacks, two predictors with the
    same label, or units without any value in a predictor's window (naming those units).
    """
    labels = pd.Index([p.label for p in predictors])
    if labels.duplicated().any():
        raise PredictorError(f"predictors listed more than once: {preview(labels[labels.duplicated()].tolist())}")
    missing = sorted({p.column for p in predictors} - set(panel.columns))
    if missing:
        raise PredictorError(f"panel has no predictor column(s) {preview(missing)}; it has {list(panel.columns)}")
    rows = panel[panel[unit].isin(units)]
    values = []
    for p in predictors:
        window = rows[(rows[time] >= p.start) & (rows[time] <= p.end)]
        summary = window.groupby(unit)[p.column].agg(p.op).reindex(units)
        if p.op == "sum":  # a sum over no values is 0 for pandas: count them instead
            summary = summary.where(window.groupby(unit)[p.column].count().reindex(units) > 0)
        empty = summary.index[summary.isna()].tolist()
        if empty:
            raise PredictorError(
                f"predictor {p.label!r}: no {p.column!r} between {show(p.start)} and {show(p.end)} "
                f"for {len(empty)} unit(s): {preview(empty)}"
            )
        values.append(summary.to_numpy(dtype=float))
    return pd.DataFrame(np.vstack(values), index=labels.rename("predictor"), columns=pd.Index(units, name=unit))


def standardise(matrix: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Each predictor (row) divided by its standard deviation over the units (columns, ddof=1), as Synth does
    before weighting predictors. Shape (k, units) in and out.

    Raises :class:`PredictorError` naming a predictor with the same value for every unit.
    """
    spread = matrix.std(axis=1, ddof=1)
    flat = [label for label, s in zip(labels, spread, strict=True) if not s > 0]
    if flat:
        raise PredictorError(
            f"predictor(s) with the same value for every unit, which cannot be weighted: {preview(flat)}"
        )
    return matrix / spread[:, None]
