"""Source layer: the four tables of the source database, the roots of the lineage.

They are observable source assets: ``covid-etl seed`` (or the deployment's seed job) fills them from the CSV
files; Dagster reads them through the MySQL IO manager but never materializes them itself. Observing them
(``observe_sources``, the first thing ``covid-etl run`` does) records each table's content fingerprint as its
data version, so Dagster knows which tables changed since the assets downstream last read them.
"""

import warnings
from collections.abc import Iterator

import dagster as dg

from etl_pipeline.asset_keys import asset_key
from etl_pipeline.core.source_schema import SOURCE_TABLES, TableSchema
from etl_pipeline.resources.mysql_io_manager import MySQLIOManager
from etl_pipeline.retries import retry_only_transient
from etl_pipeline.transforms.fingerprint import content_fingerprint

#: When the daily refresh (the automation sensor of definitions.py) observes the source tables, UTC.
DAILY_OBSERVATION_CRON = "0 1 * * *"

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


_SPECS = [
    dg.AssetSpec(
        key=asset_key("source", name),
        group_name="source",  # kind: the source database's, added by definitions.py from the settings
        description=f"{_DESCRIPTIONS[name]} Loaded from {schema.file_name} by `covid-etl seed`.",
        metadata={"dagster/column_schema": column_schema(schema), "dagster/table_name": name},
        automation_condition=dg.AutomationCondition.on_cron(DAILY_OBSERVATION_CRON),  # then the daily refresh
    ).with_io_manager_key("mysql_io_manager")
    for name, schema in SOURCE_TABLES.items()
]


def _observe(context: dg.AssetExecutionContext) -> Iterator[dg.ObserveResult]:
    """Each selected table read in full (streamed) and fingerprinted
    (:func:`~etl_pipeline.transforms.fingerprint.content_fingerprint`): the fingerprint is the data version, and
    the metadata gives the rows and, for a dated table, its dates."""
    source: MySQLIOManager = context.resources.mysql_io_manager
    for key in context.selected_asset_keys:
        table = key.path[-1]
        with retry_only_transient(f"observing source table {table}"):
            dated = "date" in SOURCE_TABLES[table].column_names
            fingerprint = content_fingerprint(source.read_table(table), "date" if dated else None)
        metadata: dict[str, object] = {"dagster/row_count": fingerprint.rows}
        if fingerprint.by_date:
            metadata |= {"dates": len(fingerprint.by_date), "first date": min(fingerprint.by_date),
                         "last date": max(fingerprint.by_date)}
        yield dg.ObserveResult(asset_key=key, data_version=dg.DataVersion(fingerprint.data_version),
                               metadata=metadata)


with warnings.catch_warnings():  # beta since Dagster 1.9, and the documented way to version a source's data
    warnings.simplefilter("ignore", dg.BetaWarning)
    observe_sources = dg.multi_observable_source_asset(specs=_SPECS, name="observe_sources", can_subset=True,
                                                       required_resource_keys={"mysql_io_manager"})(_observe)

source_assets = [observe_sources]
