"""The warehouse IO manager against the real PostgreSQL on 127.0.0.1 and an SQLite file: every case runs on both.

Inputs are small pyarrow tables built here; expected contents are derived from them in plain Python and
compared with what plain SQL reads back (not with the IO manager's own reader).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from etl_pipeline.core.engines import DatabaseUnavailableError, describe_url
from etl_pipeline.core.errors import WarehouseError
from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES, warehouse_table
from etl_pipeline.resources.arrow_input import as_reader
from etl_pipeline.resources.psql_io_manager import PostgresIOManager
from etl_pipeline.resources.warehouse_backend import LoadStats
from etl_pipeline.resources.warehouse_input import conform
from etl_pipeline.resources.warehouse_postgres import PostgresBackend
from etl_pipeline.resources.warehouse_sql import column_definitions
from etl_pipeline.resources.warehouse_sqlite import SQLiteBackend
from etl_pipeline_tests.conftest import free_port

LOCATIONS = "fact_location_daily"
LOCATION_KEY = ("date", "country_region", "province_state")
START = dt.date(2020, 1, 22)
#: (country_region, province_state, latitude, longitude): '' provinces, NULL coordinates, quotes, commas, accents.
PLACES = [
    ("US", "", 40.0, -100.0),
    ("US", "New York", None, None),
    ("Canada", "Ontario", 51.2538, -85.3232),
    ("Cote d'Ivoire", "", 7.54, 1 / 3),
    ('Korea, "South"', "Jeju-do ü", 33.93911, None),
]
LOCATION_SCHEMA = pa.schema([
    ("date", pa.date32()), ("country_region", pa.string()), ("province_state", pa.string()),
    ("latitude", pa.float64()), ("longitude", pa.float64()),
    ("confirmed", pa.int64()), ("deaths", pa.int64()), ("recovered", pa.int64()), ("active", pa.int64()),
    ("new_cases", pa.int64()), ("new_deaths", pa.int64()), ("new_cases_7d_avg", pa.float64()),
    ("new_deaths_7d_avg", pa.float64()), ("case_fatality_ratio", pa.float64()), ("days_since_100_cases", pa.int32()),
    ("downward_revision", pa.bool_()),
])  # fmt: skip
ARROW_TYPES = {"text": pa.string(), "bigint": pa.int64(), "integer": pa.int32(), "double": pa.float64(),
               "date": pa.date32(), "boolean": pa.bool_()}


def locations(days: int, first_day: int = 0) -> pa.Table:
    """``len(PLACES)`` rows per day; counts derived from the day and place so that every row differs."""
    rows = [
        {"date": START + dt.timedelta(days=day), "country_region": country, "province_state": province,
         "latitude": lat, "longitude": lon, "confirmed": 10 * day + i, "deaths": day, "recovered": i,
         "active": 9 * day, "new_cases": 10 if day else None, "new_deaths": 1 - i if day else None,
         "new_cases_7d_avg": 10.0 if day >= 7 else None, "new_deaths_7d_avg": 1 / 7 if day >= 7 else None,
         "case_fatality_ratio": day / (10 * day + i) if day or i else None,
         "days_since_100_cases": day - 10 if day >= 10 else None, "downward_revision": i > 1 and day > 0}
        for day in range(first_day, first_day + days)
        for i, (country, province, lat, lon) in enumerate(PLACES)
    ]
    return pa.Table.from_pylist(rows, schema=LOCATION_SCHEMA)


def with_value(table: pa.Table, row: int, column: str, value: object) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.schema.get_field_index(column)
    return table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))


def as_rows(table: pa.Table) -> list[tuple]:
    """The table's rows in the warehouse column order, dates as ISO text, sorted."""
    names = warehouse_table(LOCATIONS).column_names
    rows = zip(*(table.column(n).to_pylist() for n in names))
    return sorted(tuple(v.isoformat() if isinstance(v, dt.date) else v for v in row) for row in rows)


def query(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def stored_rows(url: str) -> list[tuple]:
    columns = ", ".join('CAST("date" AS TEXT)' if c == "date" else f'"{c}"'
                        for c in warehouse_table(LOCATIONS).column_names)
    return sorted(query(url, f"SELECT {columns} FROM {LOCATIONS}"))


def checksum(url: str) -> str:
    """A digest of the stored bytes: PostgreSQL's row text, SQLite's values with their storage classes."""
    order = ", ".join(f'"{k}"' for k in LOCATION_KEY)
    if url.startswith("postgresql"):
        return query(url, f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY {order})) FROM {LOCATIONS} t")[0][0]
    rows = query(url, f"SELECT * FROM {LOCATIONS} ORDER BY {order}")
    return hashlib.md5(repr([[(type(v).__name__, v) for v in row] for row in rows]).encode()).hexdigest()


def has_table(url: str, name: str) -> bool:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).has_table(name)
    finally:
        engine.dispose()


def counts(stats: LoadStats) -> tuple[int, int, int, int, int]:
    return stats.rows, stats.inserted, stats.updated, stats.deleted, stats.unchanged


@pytest.fixture(params=["postgresql", "sqlite"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture
def manager(warehouse_url: str) -> PostgresIOManager:
    return PostgresIOManager(url=warehouse_url)


# -- loads ------------------------------------------------------------------------------------------------


def test_first_load_stores_exactly_the_input(manager: PostgresIOManager, warehouse_url: str) -> None:
    data = locations(days=40)
    reader = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=64))

    stats = manager.load_table(LOCATIONS, reader)

    assert counts(stats) == (200, 200, 0, 0, 0)
    assert stored_rows(warehouse_url) == as_rows(data)


def test_upsert_counts_new_and_changed_rows(manager: PostgresIOManager, warehouse_url: str) -> None:
    before = locations(days=3)
    manager.load_table(LOCATIONS, before)
    after = with_value(before, 0, "confirmed", 1_000_000)
    after = with_value(after, 7, "deaths", 42)
    after = with_value(after, 1, "latitude", 40.7128)  # NULL -> value is a change
    after = with_value(after, 2, "longitude", None)  # value -> NULL is a change
    after = pa.concat_tables([after, locations(days=1, first_day=3)])

    stats = manager.load_table(LOCATIONS, after)

    assert counts(stats) == (20, 5, 4, 0, 11)
    assert stored_rows(warehouse_url) == as_rows(after)


def test_rows_removed_upstream_disappear(manager: PostgresIOManager, warehouse_url: str) -> None:
    manager.load_table(LOCATIONS, locations(days=4))
    kept = locations(days=4).filter(pc.not_equal(pc.field("country_region"), "US"))

    stats = manager.load_table(LOCATIONS, kept)

    assert counts(stats) == (12, 0, 0, 8, 12)
    assert stored_rows(warehouse_url) == as_rows(kept)


def test_second_identical_load_changes_nothing(manager: PostgresIOManager, warehouse_url: str) -> None:
    data = locations(days=10)
    manager.load_table(LOCATIONS, data)
    digest = checksum(warehouse_url)
    versions = row_versions(warehouse_url)

    stats = manager.load_table(LOCATIONS, data)

    assert counts(stats) == (50, 0, 0, 0, 50)
    assert checksum(warehouse_url) == digest
    assert row_versions(warehouse_url) == versions


def row_versions(url: str) -> list[tuple] | None:
    """PostgreSQL's per-row transaction ids (a rewritten row gets a new one); SQLite has none."""
    if not url.startswith("postgresql"):
        return None
    return query(url, f"SELECT xmin::text FROM {LOCATIONS} ORDER BY {', '.join(LOCATION_KEY)}")


def test_empty_province_and_null_coordinates_round_trip(manager: PostgresIOManager, warehouse_url: str) -> None:
    data = locations(days=3)
    manager.load_table(LOCATIONS, data)

    [(blank, null_province, null_latitude, null_longitude)] = query(
        warehouse_url,
        f"SELECT sum(CASE WHEN province_state = '' THEN 1 ELSE 0 END), sum(CASE WHEN province_state IS NULL "
        f"THEN 1 ELSE 0 END), sum(CASE WHEN latitude IS NULL THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN longitude IS NULL THEN 1 ELSE 0 END) FROM {LOCATIONS}",
    )
    assert (blank, null_province) == (3 * sum(p[1] == "" for p in PLACES), 0)
    assert null_latitude == 3 * sum(p[2] is None for p in PLACES)
    assert null_longitude == 3 * sum(p[3] is None for p in PLACES)

    read = manager.read_table(LOCATIONS).to_pandas()
    assert read["province_state"].tolist().count("") == blank
    assert read["latitude"].isna().sum() == null_latitude
    assert all(type(d) is dt.date for d in read["date"])


# -- failures ---------------------------------------------------------------------------------------------

GOOD_BATCH_ROWS = 10_000
BAD_ROW = 6  # inside the third batch: input row 2 * 10,000 + 7


def failing_input(kind: str) -> pa.RecordBatchReader:
    """Two batches of good rows, then a batch whose seventh row is bad."""
    days = GOOD_BATCH_ROWS // len(PLACES)
    batches = [locations(days), locations(days, first_day=days), locations(2, first_day=2 * days)]
    if kind == "null":
        batches[2] = with_value(batches[2], BAD_ROW, "deaths", None)
    elif kind == "duplicate key":
        batches[2] = with_value(batches[2], BAD_ROW, "date", START)  # the key of a row of the first batch
    elif kind == "fraction in a bigint":
        batches = [b.set_column(5, "confirmed", b.column("confirmed").cast(pa.float64())) for b in batches]
        batches[2] = with_value(batches[2], BAD_ROW, "confirmed", 1.5)
    schema = batches[0].schema
    return pa.RecordBatchReader.from_batches(schema, [b for t in batches for b in t.to_batches()])


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("null", "column 'deaths', input row 20,007: NULL in a NOT NULL column"),
        ("duplicate key", "unique"),
        ("fraction in a bigint", "column 'confirmed', input row 20,007: 1.5 is not a valid int64"),
    ],
    ids=["null", "duplicate key", "fraction in a bigint"],
)
def test_failed_load_keeps_previous_content(manager: PostgresIOManager, warehouse_url: str, kind: str,
                                            detail: str) -> None:
    previous = locations(days=3)
    manager.load_table(LOCATIONS, previous)
    digest = checksum(warehouse_url)

    with pytest.raises(WarehouseError) as failure:
        manager.load_table(LOCATIONS, failing_input(kind))

    message = str(failure.value)
    assert f"loading {LOCATIONS} into {describe_url(warehouse_url)} failed" in message
    assert detail.lower() in message.lower()  # PostgreSQL and SQLite spell "unique" differently
    assert stored_rows(warehouse_url) == as_rows(previous)
    assert checksum(warehouse_url) == digest
    assert counts(manager.load_table(LOCATIONS, previous)) == (15, 0, 0, 0, 15)  # the connection is usable


def test_failed_first_load_creates_no_table(manager: PostgresIOManager, warehouse_url: str) -> None:
    """The CREATE TABLE is part of the transaction (pysqlite would commit DDL on its own)."""
    with pytest.raises(WarehouseError):
        manager.load_table(LOCATIONS, failing_input("duplicate key"))

    assert not has_table(warehouse_url, LOCATIONS)


def stored_dates(url: str) -> list[tuple]:
    return query(url, 'SELECT CAST("date" AS TEXT), day_index FROM dim_date ORDER BY day_index')


def test_tables_loaded_together_change_together(manager: PostgresIOManager, warehouse_url: str) -> None:
    dates = dim_date_frame(["2020-01-22", "2020-01-23"])
    stats = manager.load_tables({"dim_date": dates, LOCATIONS: locations(days=2)})

    assert list(stats) == ["dim_date", LOCATIONS]
    assert (counts(stats["dim_date"]), counts(stats[LOCATIONS])) == ((2, 2, 0, 0, 0), (10, 10, 0, 0, 0))
    assert stored_dates(warehouse_url) == [("2020-01-22", 0), ("2020-01-23", 1)]
    assert stored_rows(warehouse_url) == as_rows(locations(days=2))


def test_a_failure_in_one_of_the_tables_loaded_together_changes_none(
    manager: PostgresIOManager, warehouse_url: str
) -> None:
    """dim_date loads first and would load fine: it is rolled back with the table that fails."""
    manager.load_tables({"dim_date": dim_date_frame(["2020-01-22"]), LOCATIONS: locations(days=3)})
    digest, dates = checksum(warehouse_url), stored_dates(warehouse_url)

    with pytest.raises(WarehouseError) as failure:
        manager.load_tables({"dim_date": dim_date_frame(["2020-01-22", "2020-01-23", "2020-01-24"]),
                             LOCATIONS: failing_input("null")})

    assert str(failure.value).startswith(
        f"loading {LOCATIONS} into {describe_url(warehouse_url)} failed; none of the 2 tables (dim_date, "
        f"{LOCATIONS}) was changed: column 'deaths', input row 20,007: NULL in a NOT NULL column")
    assert (stored_dates(warehouse_url), checksum(warehouse_url)) == (dates, digest)


def test_a_failed_first_publication_creates_no_table(manager: PostgresIOManager, warehouse_url: str) -> None:
    with pytest.raises(WarehouseError):
        manager.load_tables({"dim_date": dim_date_frame(["2020-01-22"]), LOCATIONS: failing_input("duplicate key")})

    assert not has_table(warehouse_url, "dim_date") and not has_table(warehouse_url, LOCATIONS)


def test_dropped_connection_keeps_previous_content(postgres_url: str) -> None:
    manager = PostgresIOManager(url=postgres_url)
    previous = locations(days=3)
    manager.load_table(LOCATIONS, previous)
    database = sa.make_url(postgres_url).database

    def batches() -> Iterator[pa.RecordBatch]:
        yield from locations(days=2000).to_batches()
        query(postgres_url.rsplit("/", 1)[0] + "/postgres",
              f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
        yield from locations(days=2, first_day=2000).to_batches()

    with pytest.raises(WarehouseError, match=f"loading {LOCATIONS} into .* failed"):
        manager.load_table(LOCATIONS, pa.RecordBatchReader.from_batches(LOCATION_SCHEMA, batches()))

    assert stored_rows(postgres_url) == as_rows(previous)
    assert counts(manager.load_table(LOCATIONS, locations(days=4))) == (20, 5, 0, 0, 15)


def test_column_mismatch_names_the_columns(manager: PostgresIOManager, warehouse_url: str) -> None:
    previous = locations(days=2)
    manager.load_table(LOCATIONS, previous)
    wrong = previous.drop_columns(["deaths", "latitude"]).append_column("Deaths", previous.column("deaths"))

    with pytest.raises(WarehouseError) as failure:
        manager.load_table(LOCATIONS, wrong)

    assert "missing ['latitude', 'deaths']; unexpected ['Deaths']" in str(failure.value)
    assert stored_rows(warehouse_url) == as_rows(previous)


def test_existing_table_with_other_columns_is_refused(manager: PostgresIOManager, warehouse_url: str) -> None:
    engine = sa.create_engine(warehouse_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {LOCATIONS} (day TEXT)"))
    engine.dispose()

    with pytest.raises(WarehouseError, match=f"the existing table {LOCATIONS} has the columns .* migrate or drop it"):
        manager.load_table(LOCATIONS, locations(days=1))

    assert query(warehouse_url, f"SELECT count(*) FROM {LOCATIONS}") == [(0,)]


def test_a_table_of_an_earlier_release_gains_the_appended_columns(manager: PostgresIOManager,
                                                                  warehouse_url: str) -> None:
    """The location table as it was before the measures: its first nine columns. A load adds the others."""
    model = warehouse_table(LOCATIONS)
    earlier = dataclasses.replace(model, columns=model.columns[:9])
    backend = PostgresBackend if warehouse_url.startswith("postgresql") else SQLiteBackend
    engine = sa.create_engine(warehouse_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {LOCATIONS} ({column_definitions(earlier, backend.types)})"))
        conn.execute(sa.text(f"INSERT INTO {LOCATIONS} VALUES ('2020-01-22', 'US', '', 1.0, 2.0, 1, 2, 3, 4), "
                             "('2019-12-31', 'Nowhere', '', NULL, NULL, 0, 0, 0, 0)"))
    engine.dispose()

    stats = manager.load_table(LOCATIONS, locations(days=2))

    assert counts(stats) == (10, 9, 1, 1, 0)
    assert [c for c, *_ in query(warehouse_url, _COLUMNS_SQL[backend])] == model.column_names
    assert stored_rows(warehouse_url) == as_rows(locations(days=2))


_COLUMNS_SQL = {
    PostgresBackend: f"SELECT column_name FROM information_schema.columns WHERE table_name = '{LOCATIONS}' "
                     "ORDER BY ordinal_position",
    SQLiteBackend: f"SELECT name FROM pragma_table_info('{LOCATIONS}')",
}


def test_unreachable_server_names_it_without_the_password() -> None:
    port = free_port()  # nothing listens there
    manager = PostgresIOManager(url=f"postgresql+psycopg2://etl:n0t-the-pw@127.0.0.1:{port}/warehouse",
                                connect_wait_s=1)

    with pytest.raises(DatabaseUnavailableError) as failure:
        manager.load_table(LOCATIONS, locations(days=1))

    message = str(failure.value)
    assert f"etl:***@127.0.0.1:{port}/warehouse" in message
    assert "n0t-the-pw" not in message


# -- the declared schema in the database catalog ----------------------------------------------------------


def empty_inputs() -> dict[str, pa.Table]:
    return {name: pa.schema([(c.name, ARROW_TYPES[c.type]) for c in table.columns]).empty_table()
            for name, table in WAREHOUSE_TABLES.items()}


def test_postgres_catalog_has_types_keys_comments_and_indexes(postgres_url: str) -> None:
    manager = PostgresIOManager(url=postgres_url)
    for name, empty in empty_inputs().items():
        assert counts(manager.load_table(name, empty)) == (0, 0, 0, 0, 0)

    for name, table in WAREHOUSE_TABLES.items():
        columns = query(postgres_url, "SELECT column_name, data_type, is_nullable, col_description("
                        f"'{name}'::regclass, ordinal_position) FROM information_schema.columns "
                        f"WHERE table_name = '{name}' ORDER BY ordinal_position")
        pg_types = {"double": "double precision"}
        assert columns == [(c.name, pg_types.get(c.type, c.type), "YES" if c.nullable else "NO", c.comment)
                           for c in table.columns]
        assert query(postgres_url, f"SELECT obj_description('{name}'::regclass, 'pg_class')") == [(table.comment,)]
        keys = query(postgres_url, "SELECT k.column_name FROM information_schema.table_constraints c "
                     "JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name) "
                     f"WHERE c.table_name = '{name}' AND c.constraint_type = 'PRIMARY KEY' ORDER BY k.ordinal_position")
        assert [k for (k,) in keys] == list(table.primary_key)
        indexes = query(postgres_url, "SELECT array_agg(a.attname::text ORDER BY k.n) FROM pg_index i "
                        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
                        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                        f"WHERE i.indrelid = '{name}'::regclass AND NOT i.indisprimary GROUP BY i.indexrelid")
        assert sorted(tuple(columns) for (columns,) in indexes) == sorted(table.indexes)


def test_sqlite_schema_has_types_keys_comments_and_indexes(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    manager = PostgresIOManager(url=url)
    for name, empty in empty_inputs().items():
        manager.load_table(name, empty)

    sqlite_types = {"text": "TEXT", "bigint": "INTEGER", "integer": "INTEGER", "double": "REAL", "date": "TEXT",
                    "boolean": "INTEGER"}
    for name, table in WAREHOUSE_TABLES.items():
        info = query(url, f"PRAGMA table_info({name})")
        assert [(n, t, bool(notnull)) for _, n, t, notnull, _, _ in info] == [
            (c.name, sqlite_types[c.type], not c.nullable) for c in table.columns]
        assert [n for _, n, *_, pk in sorted(info, key=lambda r: r[5]) if pk] == list(table.primary_key)
        [(schema_text,)] = query(url, f"SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '{name}'")
        assert all(comment in schema_text for comment in [table.comment, *(c.comment for c in table.columns)])
        indexes = [index for _, index, _, origin, _ in query(url, f"PRAGMA index_list({name})") if origin == "c"]
        index_columns = [tuple(r[2] for r in query(url, f"PRAGMA index_info({i})")) for i in indexes]
        assert sorted(index_columns) == sorted(table.indexes)


def test_sqlite_tables_are_strict(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    PostgresIOManager(url=url).load_table(LOCATIONS, locations(days=1))
    engine = sa.create_engine(url)
    try:
        with pytest.raises(sa.exc.IntegrityError, match="cannot store TEXT value in INTEGER column"):
            with engine.begin() as conn:
                conn.execute(sa.text(f"UPDATE {LOCATIONS} SET confirmed = 'many'"))
    finally:
        engine.dispose()


# -- as a Dagster IO manager ------------------------------------------------------------------------------


def test_dagster_asset_round_trip_with_metadata(postgres_url: str) -> None:
    url = postgres_url  # its password (the tests' admin role's) must never reach the metadata
    password = sa.make_url(url).password
    assert password
    continents = pd.DataFrame({
        "population": [1_340_598_147, None, 4_641_054_775],
        "total_deaths": [3000, 10, 130_000],
        "continent": ["Africa", "Unknown", "Asia"],
        "total_confirmed": [200_000, 1000, 3_000_000],
        "total_recovered": [100_000, 900, 2_000_000],
        "total_active": [97_000, 90, 870_000],
        "number_of_countries": [54, 1, 47],
    })  # fmt: skip
    received: list[pd.DataFrame] = []

    @dg.asset(key=["gold", "medical", "covid19_continent_stats"], io_manager_key="warehouse")
    def continent_stats() -> pd.DataFrame:
        return continents

    @dg.asset(ins={"stats": dg.AssetIn(key=["gold", "medical", "covid19_continent_stats"])})
    def reader(stats: pd.DataFrame) -> None:
        received.append(stats)

    result = dg.materialize([continent_stats, reader],
                            resources={"warehouse": PostgresIOManager(url=url), "io_manager": dg.mem_io_manager})

    [materialization] = result.asset_materializations_for_node("gold__medical__covid19_continent_stats")
    metadata = {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
    database = sa.make_url(url).database
    assert metadata["dagster/row_count"] == 3
    assert (metadata["inserted"], metadata["updated"], metadata["deleted"]) == (3, 0, 0)
    assert metadata["dagster/table_name"] == f"{database}.public.covid19_continent_stats"
    user = sa.make_url(url).username
    assert metadata["database"] == f"postgresql+psycopg2://{user}:***@127.0.0.1:5432/{database}"
    assert [c.name for c in metadata["dagster/column_schema"].columns] == warehouse_table(
        "covid19_continent_stats").column_names
    assert password not in repr(materialization.metadata)

    [frame] = received
    expected = continents.sort_values("continent").reset_index(drop=True)[frame.columns]
    assert frame["continent"].tolist() == ["Africa", "Asia", "Unknown"]  # ordered by the primary key
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)


# -- input conformance (no database) ----------------------------------------------------------------------


def dim_date_frame(dates: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.to_datetime(dates), "year": 2020, "month": 1, "day": 22, "iso_week": 4,
                         "day_of_week": 3, "day_index": range(len(dates))})


def test_conform_takes_midnight_timestamps_as_dates() -> None:
    [batch] = conform(as_reader(dim_date_frame(["2020-01-22", "2020-01-23"])), warehouse_table("dim_date"))

    assert batch.column("date").to_pylist() == [dt.date(2020, 1, 22), dt.date(2020, 1, 23)]
    assert batch.schema.field("day_index").type == pa.int32()


def test_conform_refuses_a_time_of_day_naming_column_and_row() -> None:
    frame = dim_date_frame(["2020-01-22 00:00", "2020-01-23 00:00", "2020-01-24 06:00"])

    with pytest.raises(ValueError, match="column 'date', input row 3: 2020-01-24 06:00:00.* is not a valid date32"):
        list(conform(as_reader(frame), warehouse_table("dim_date")))
