"""The four source tables: raw CSV headers, the snake_case column names derived from them, types, keys.

This is the single description of the source schema: validation, the source database DDL and the
bronze (Arrow) schema are all derived from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # annotations only: the functions below import them when called
    import pandas as pd
    import pyarrow as pa

ColumnType = Literal["str", "int", "float", "date"]

#: Longest text value a source column holds (``VARCHAR(255)`` in the source database).
MAX_TEXT_LENGTH = 255

_NUMBER_WORDS = {"1": "one", "2": "two", "3": "three", "7": "seven"}


def snake_case(header: str) -> str:
    """Derive a column name from a raw header.

    ``Province/State`` -> ``province_state``, ``Deaths / 100 Cases`` -> ``deaths_per_100_cases``,
    ``Tot Cases/1M pop`` -> ``tot_cases_per_1m_pop``, ``1 week % increase`` -> ``one_week_pct_increase``,
    ``Serious,Critical`` -> ``serious_critical``, ``TotalCases`` -> ``total_cases``.
    """
    name = header.strip()
    name = re.sub(r"\s*/\s*(?=\d)", " per ", name)  # a ratio: "X / 100 Y", "X/1M pop"
    name = name.replace("%", " pct ")
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)  # CamelCase -> Camel Case
    name = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    head, _, rest = name.partition("_")
    if head in _NUMBER_WORDS:  # an SQL identifier should not start with a digit
        name = "_".join(filter(None, [_NUMBER_WORDS[head], rest]))
    return name


@dataclass(frozen=True)
class Column:
    header: str
    type: ColumnType
    nullable: bool = False

    @property
    def name(self) -> str:
        return snake_case(self.header)


@dataclass(frozen=True)
class TableSchema:
    name: str
    file_name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    #: Columns where an empty value means "" rather than NULL (part of a key, e.g. no province).
    empty_is_blank: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _cols(spec: str, type_: ColumnType, nullable: bool = False) -> list[Column]:
    return [Column(h, type_, nullable) for h in spec.split("|")]


COUNTS = "Confirmed|Deaths|Recovered|Active"
DAILY_CHANGES = "New cases|New deaths|New recovered"

CASES_POSITION = TableSchema(
    name="covid19_cases_position",
    file_name="covid19_cases_position.csv",
    columns=(
        Column("Province/State", "str"),
        Column("Country/Region", "str"),
        Column("Lat", "float"),
        Column("Long", "float"),
        Column("Date", "date"),
        *_cols(COUNTS, "int"),
        Column("WHO Region", "str"),
    ),
    primary_key=("date", "country_region", "province_state"),
    empty_is_blank=("province_state",),
)

COUNTRY_WISE = TableSchema(
    name="covid19_country_wise",
    file_name="covid19_country_wise.csv",
    columns=(
        Column("Country/Region", "str"),
        *_cols(COUNTS, "int"),
        *_cols(DAILY_CHANGES, "int"),
        # Ratios are NULL where undefined: "Deaths / 100 Recovered" is inf in the CSV when nobody recovered.
        *_cols("Deaths / 100 Cases|Recovered / 100 Cases|Deaths / 100 Recovered", "float", nullable=True),
        Column("Confirmed last week", "int"),
        Column("1 week change", "int"),
        Column("1 week % increase", "float", nullable=True),
        Column("WHO Region", "str"),
    ),
    primary_key=("country_region",),
)

TIME_SERIES = TableSchema(
    name="covid19_time_series",
    file_name="covid19_time_series.csv",
    columns=(
        Column("Date", "date"),
        Column("Country/Region", "str"),
        *_cols(COUNTS, "int"),
        *_cols(DAILY_CHANGES, "int"),
        Column("WHO Region", "str"),
    ),
    primary_key=("date", "country_region"),
)

WORLDOMETER = TableSchema(
    name="covid19_worldometer",
    file_name="covid19_worldometer.csv",
    columns=(
        Column("Country/Region", "str"),
        Column("Continent", "str", nullable=True),
        *_cols("Population|TotalCases|NewCases|TotalDeaths|NewDeaths|TotalRecovered|NewRecovered|ActiveCases",
               "int", nullable=True),
        Column("Serious,Critical", "int", nullable=True),
        *_cols("Tot Cases/1M pop|Deaths/1M pop", "float", nullable=True),
        Column("TotalTests", "int", nullable=True),
        Column("Tests/1M pop", "float", nullable=True),
        Column("WHO Region", "str", nullable=True),
    ),
    primary_key=("country_region",),
)

SOURCE_TABLES: dict[str, TableSchema] = {
    t.name: t for t in (CASES_POSITION, COUNTRY_WISE, TIME_SERIES, WORLDOMETER)
}


_ARROW_TYPES = {"str": "string", "int": "int64", "float": "float64", "date": "date32"}


def arrow_schema(table: TableSchema):
    """The bronze Arrow schema of a source table (nullable everywhere: the lake does not enforce keys)."""
    import pyarrow as pa

    return pa.schema([pa.field(c.name, getattr(pa, _ARROW_TYPES[c.type])()) for c in table.columns])


def frame_of(rows: pa.Table) -> pd.DataFrame:
    """A source table's Arrow rows (in :func:`arrow_schema`'s types) as the typed DataFrame the rest of the
    project reads: text as ``object`` (None for NULL), integers as ``Int64``, floats as ``float64`` (NaN for
    NULL), dates as ``datetime.date`` objects."""
    import pandas as pd
    import pyarrow as pa

    return rows.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
