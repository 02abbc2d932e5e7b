"""Country conformance: the reviewed reference of JHU country names, worldometer names and continents.

``country_reference.csv`` (packaged next to this module) has one row per country of the JHU tables:

- ``country_region``: the JHU name (``covid19_time_series``, ``covid19_country_wise``, ``covid19_cases_position``);
- ``worldometer_name``: the same country's name in ``covid19_worldometer`` after silver trimming (``USA`` for ``US``,
  ``Brunei`` for worldometer's ``'Brunei '``); empty when worldometer has no row for it (China, Kosovo);
- ``continent``: one of :data:`CONTINENTS`. It equals worldometer's continent wherever worldometer has one
  (``Australia/Oceania`` is spelled ``Oceania``); for countries absent from worldometer it was decided by review
  (China -> Asia, Kosovo -> Europe);
- ``worldometer_aliases``: other spellings of the country that a worldometer snapshot may use, ``|``-separated
  (``Czech Republic`` for Czechia, ``United States`` for the US); usually empty.

A worldometer row belongs to a country when its name is one of the country's spellings
(:func:`worldometer_spellings`): the reviewed ``worldometer_name``, the JHU name itself (worldometer spelling
``South Korea`` rather than ``S. Korea``) or an alias. No spelling may belong to two countries.

A name missing from the reference is never dropped: it gets a NULL continent, the ``mapped`` flag of
``silver.build_countries`` is false, and it lands in the ``Unknown`` bucket of the continent totals until the
reference is extended.
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

CONTINENTS = ("Africa", "Asia", "Europe", "North America", "South America", "Oceania")

#: worldometer's spelling of a continent -> the reference's.
WORLDOMETER_CONTINENT_NAMES = {"Australia/Oceania": "Oceania"}

#: Continent bucket for countries that are not in the reference (see ``gold.continent_stats``).
UNKNOWN_CONTINENT = "Unknown"

REFERENCE_FILE = "country_reference.csv"
#: The columns of :data:`REFERENCE_FILE`, in order.
REFERENCE_COLUMNS = ["country_region", "worldometer_name", "continent", "worldometer_aliases"]
ALIAS_SEPARATOR = "|"

REFERENCE_SCHEMA = StructType(
    [
        StructField("country_region", StringType(), nullable=False),
        StructField("worldometer_name", StringType(), nullable=True),
        StructField("continent", StringType(), nullable=False),
    ]
)

SPELLINGS_SCHEMA = StructType(
    [
        StructField("worldometer_name", StringType(), nullable=False),
        StructField("country_region", StringType(), nullable=False),
    ]
)


def load_country_reference() -> pd.DataFrame:
    """The packaged reference as strings (``worldometer_name`` is ``""`` when absent), validated.

    Validated by :func:`validate_reference`, so a bad edit of the CSV fails loudly instead of duplicating
    or misplacing countries.
    """
    with files(__package__).joinpath(REFERENCE_FILE).open(encoding="utf-8") as f:
        reference = pd.read_csv(f, dtype=str, keep_default_na=False)
    validate_reference(reference)
    return reference


def validate_reference(reference: pd.DataFrame) -> None:
    """Raise ``ValueError`` unless ``reference`` has the reference's columns, unique names, worldometer spellings
    that each belong to one country, and known continents."""
    if list(reference.columns) != REFERENCE_COLUMNS:
        raise ValueError(f"{REFERENCE_FILE}: columns {list(reference.columns)}, expected {REFERENCE_COLUMNS}")
    for column, names in (
        ("country_region", reference["country_region"]),
        ("worldometer_name", reference.loc[reference["worldometer_name"] != "", "worldometer_name"]),
    ):
        repeated = sorted(set(names[names.duplicated()]))
        if repeated:
            raise ValueError(f"{REFERENCE_FILE}: {column} listed more than once: {repeated}")
    spellings = pd.DataFrame(worldometer_spellings(reference), columns=["spelling", "country_region"])
    shared = spellings[spellings["spelling"].duplicated(keep=False)]
    if not shared.empty:
        raise ValueError(f"{REFERENCE_FILE}: worldometer spellings of more than one country: "
                         f"{shared.groupby('spelling')['country_region'].agg(list).to_dict()}")
    unknown = reference.loc[~reference["continent"].isin(CONTINENTS), ["country_region", "continent"]]
    if not unknown.empty:
        raise ValueError(
            f"{REFERENCE_FILE}: continent must be one of {CONTINENTS}: {unknown.to_dict('records')}"
        )


def worldometer_spellings(reference: pd.DataFrame) -> list[tuple[str, str]]:
    """(spelling, country_region) for every name a worldometer row may give a country: its reviewed
    ``worldometer_name``, its JHU name and its aliases, each once per country."""
    pairs = []
    for r in reference.itertuples(index=False):
        names = [r.worldometer_name, r.country_region, *r.worldometer_aliases.split(ALIAS_SEPARATOR)]
        pairs += [(name, r.country_region) for name in dict.fromkeys(n.strip() for n in names) if name]
    return pairs


def worldometer_spellings_df(spark: SparkSession) -> DataFrame:
    """:func:`worldometer_spellings` of the packaged reference as a Spark DataFrame (``worldometer_name``,
    ``country_region``), the lookup that conforms worldometer to the JHU names."""
    return spark.createDataFrame(worldometer_spellings(load_country_reference()), SPELLINGS_SCHEMA)


def country_reference_df(spark: SparkSession) -> DataFrame:
    """The reference as a Spark DataFrame; an absent ``worldometer_name`` is NULL here, so it never joins."""
    rows = [
        (r.country_region, r.worldometer_name or None, r.continent)
        for r in load_country_reference().itertuples(index=False)
    ]
    return spark.createDataFrame(rows, REFERENCE_SCHEMA)
