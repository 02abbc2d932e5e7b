"""Source layer: the four tables of the source database, the roots of the lineage.

They are external assets: ``covid-etl seed`` (or the deployment's seed job) fills them from the CSV files;
Dagster reads them through the MySQL IO manager but never materializes them itself.
"""

import dagster as dg

from etl_pipeline.asset_keys import asset_key
from etl_pipeline.core.source_schema import SOURCE_TABLES, TableSchema

_DESCRIPTIONS = {
    "covid19_cases_position": "Cumulative counts per location (country or province) per day, with coordinates.",
    "covid19_country_wise": "Latest cumulative counts per country (the last day of the time series).",
    "covid19_time_series": "Cumulative and new counts per country per day (JHU CSSE).",
    "covid19_worldometer": "Population, continent and testing per country or territory (worldometers.info names).",
}


def column_schema(schema: TableSchema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, c.type, description=f"CSV header {c.header!r}",
                           constraints=dg.TableColumnConstraints(nullable=c.nullable, unique=False))
            for c in schema.columns
        ],
        constraints=dg.TableConstraints(other=[f"PRIMARY KEY ({', '.join(schema.primary_key)})"]),
    )


source_assets = [
    dg.AssetSpec(
        key=asset_key("source", name),
        group_name="source",  # kind: the source database's, added by definitions.py from the settings
        description=f"{_DESCRIPTIONS[name]} Loaded from {schema.file_name} by `covid-etl seed`.",
        metadata={"dagster/column_schema": column_schema(schema), "dagster/table_name": name},
    ).with_io_manager_key("mysql_io_manager")
    for name, schema in SOURCE_TABLES.items()
]
