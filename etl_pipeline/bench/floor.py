"""The floor: the pipeline's work done by a plain, single-process pandas script.

Same input, same layers, same outputs as ``covid-etl run`` in embedded mode: the four CSV files parsed and
checked (types, keys), loaded into a SQLite source database, extracted to bronze Parquet, cleaned and conformed
(silver), the six gold tables built and reconciled (the same checks), and the gold tables loaded into a SQLite
warehouse with their primary keys. What it leaves out is everything that makes the pipeline a platform: the
orchestrator, Spark, the per-row error reports, atomic replacement, upserts. Its time is what the data itself
costs on this machine, the floor the pipeline is compared with.

``python -m etl_pipeline.bench.floor DATA_DIR WORK_DIR`` prints ``{"rows": {table: rows}}`` (gold tables) as JSON.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from etl_pipeline.core.source_schema import SOURCE_TABLES, TableSchema
from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES
from etl_pipeline.transforms.countries import UNKNOWN_CONTINENT, WORLDOMETER_CONTINENT_NAMES, load_country_reference

MEASURES = ["confirmed", "deaths", "recovered", "active"]
_PANDAS_TYPES = {"str": "object", "int": "Int64", "float": "float64", "date": "object"}


def read_source(schema: TableSchema, path: Path) -> pd.DataFrame:
    """One CSV, typed by the source schema; missing values and duplicate keys are errors."""
    dtypes = {c.header: _PANDAS_TYPES[c.type] for c in schema.columns}
    frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values={
        c.header: [""] for c in schema.columns if c.type != "str"}, skipinitialspace=True)
    frame.columns = [c.strip() for c in frame.columns]
    frame = frame.rename(columns={c.header: c.name for c in schema.columns})[schema.column_names]
    for column in schema.columns:
        if column.type == "date":
            frame[column.name] = pd.to_datetime(frame[column.name], format="%Y-%m-%d")
        elif column.type == "float":
            frame[column.name] = frame[column.name].replace([np.inf, -np.inf], np.nan)
        elif column.nullable:
            frame[column.name] = frame[column.name].replace("", None)
        if not column.nullable and column.name not in schema.empty_is_blank and frame[column.name].isna().any():
            raise ValueError(f"{schema.file_name}: missing values in {column.header}")
    if frame.duplicated(list(schema.primary_key)).any():
        raise ValueError(f"{schema.file_name}: duplicate keys")
    return frame


def clean(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Silver cleaning: trimmed text, exact duplicates dropped, one row per key."""
    frame = frame.copy()
    for column in frame.columns[frame.dtypes == object]:
        frame[column] = frame[column].str.strip()
    frame = frame.drop_duplicates()
    if frame.duplicated(keys).any():
        raise ValueError("different rows share a key")
    return frame


def silver(sources: dict[str, pd.DataFrame], reference: pd.DataFrame) -> dict[str, pd.DataFrame]:
    series = clean(sources["covid19_time_series"], ["date", "country_region"])
    positions = clean(sources["covid19_cases_position"], ["date", "country_region", "province_state"])
    country_wise = clean(sources["covid19_country_wise"], ["country_region"])
    worldometer = clean(sources["covid19_worldometer"], ["country_region"]).rename(
        columns={"country_region": "worldometer_name"})
    names = reference.loc[reference["worldometer_name"] != "", ["worldometer_name", "country_region"]]
    worldometer = worldometer.merge(names, on="worldometer_name", how="left")
    worldometer["continent"] = worldometer["continent"].replace(WORLDOMETER_CONTINENT_NAMES)

    who = series.sort_values("date").groupby("country_region", as_index=False)["who_region"].last()
    ranked = positions.assign(_country_level=positions["province_state"] != "").sort_values(
        ["country_region", "_country_level", "date", "confirmed", "province_state"],
        ascending=[True, True, False, False, True])
    coordinates = ranked.drop_duplicates("country_region")[["country_region", "lat", "long"]].rename(
        columns={"lat": "latitude", "long": "longitude"})
    countries = (who.merge(reference[["country_region", "continent"]], on="country_region", how="left")
                 .merge(worldometer.dropna(subset=["country_region"])[["country_region", "population"]],
                        on="country_region", how="left")
                 .merge(coordinates, on="country_region", how="left"))
    return {"time_series": series, "positions": positions, "country_wise": country_wise,
            "worldometer": worldometer, "countries": countries}


def gold(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    countries = tables["countries"].assign(continent=tables["countries"]["continent"].fillna(UNKNOWN_CONTINENT))
    dim_country = countries[["country_region", "continent", "who_region", "population", "latitude", "longitude"]]
    daily = tables["time_series"].merge(
        dim_country[["country_region", "latitude", "longitude", "continent", "population"]],
        on="country_region", how="left")
    daily = with_measures(daily, ["country_region"])
    daily = daily[[c.name for c in WAREHOUSE_TABLES["covid19_daily_stats"].columns]]
    last = daily.sort_values("date").groupby("country_region", as_index=False)[MEASURES].last()
    continent = (last.merge(countries[["country_region", "continent", "population"]], on="country_region")
                 .groupby("continent", as_index=False)
                 .agg(**{f"total_{m}": (m, "sum") for m in MEASURES}, number_of_countries=("country_region", "size"),
                      population=("population", "sum")))
    dates = pd.Series(np.sort(daily["date"].unique()), name="date")
    iso = dates.dt.isocalendar()
    dim_date = pd.DataFrame({"date": dates, "year": dates.dt.year, "month": dates.dt.month,
                             "day": dates.dt.day, "iso_week": iso["week"], "day_of_week": iso["day"],
                             "day_index": (dates - dates.min()).dt.days})
    locations = tables["positions"].rename(columns={"lat": "latitude", "long": "longitude"})
    locations = with_measures(locations, ["country_region", "province_state"], derive_new=True)
    return {
        "covid19_daily_stats": daily,
        "covid19_continent_stats": continent,
        "dim_country": dim_country,
        "dim_date": dim_date,
        "fact_daily_cases": daily[[c.name for c in WAREHOUSE_TABLES["fact_daily_cases"].columns]],
        "fact_location_daily": locations[[c.name for c in WAREHOUSE_TABLES["fact_location_daily"].columns]],
    }


def with_measures(frame: pd.DataFrame, entity: list[str], derive_new: bool = False) -> pd.DataFrame:
    """The measures of ``etl_pipeline.transforms.measures``, in pandas (rows of an entity on consecutive days)."""
    frame = frame.sort_values([*entity, "date"]).reset_index(drop=True)
    by = frame.groupby(entity, sort=False)
    if derive_new:
        follows = by["date"].diff() == pd.Timedelta(days=1)
        for new, cumulative in (("new_cases", "confirmed"), ("new_deaths", "deaths")):
            frame[new] = by[cumulative].diff().where(follows).astype("Int64")
        by = frame.groupby(entity, sort=False)
    for count in ("new_cases", "new_deaths"):
        frame[f"{count}_7d_avg"] = by[count].transform(
            lambda s: s.astype("float64").rolling(7, min_periods=7).mean())
    if "population" in frame:
        population = frame["population"].astype("float64").where(frame["population"] > 0)
        for measure in ("confirmed", "deaths", "new_cases", "new_deaths", "new_cases_7d_avg", "new_deaths_7d_avg"):
            frame[f"{measure}_per_100k"] = frame[measure].astype("float64") * 100_000 / population
            frame[f"{measure}_per_million"] = frame[measure].astype("float64") * 1_000_000 / population
    confirmed = frame["confirmed"].astype("float64")
    frame["case_fatality_ratio"] = (frame["deaths"].astype("float64") / confirmed).where(confirmed > 0)
    first_100 = frame["date"].where(frame["confirmed"] >= 100).groupby([frame[e] for e in entity]).transform("min")
    frame["days_since_100_cases"] = (frame["date"] - first_100).dt.days.where(frame["date"] >= first_100).astype(
        "Int64")
    counts = [c for c in ("new_cases", "new_deaths", "new_recovered") if c in frame]
    cumulative = [c for c in ("confirmed", "deaths", "recovered") if c in frame]
    yesterday = frame.groupby(entity, sort=False)["date"].diff() == pd.Timedelta(days=1)
    decreased = (frame.groupby(entity, sort=False)[cumulative].diff() < 0).any(axis=1) & yesterday
    frame["downward_revision"] = (frame[counts].fillna(0) < 0).any(axis=1) | decreased
    return frame


def check(silver_tables: dict[str, pd.DataFrame], gold_tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """The pipeline's asset checks: keys, reconciliations (blocking: raise) and data-quality counts."""
    for name, table in gold_tables.items():
        keys = list(WAREHOUSE_TABLES[name].primary_key)
        if table[keys].isna().any().any() or table.duplicated(keys).any():
            raise ValueError(f"{name}: NULL or duplicate keys")
    daily = gold_tables["covid19_daily_stats"]
    last = daily.sort_values("date").groupby("country_region")[MEASURES].last()
    if not _same(last, silver_tables["country_wise"].set_index("country_region")[MEASURES]):
        raise ValueError("daily stats do not reconcile with country_wise")
    sums = silver_tables["positions"].groupby(["date", "country_region"])[MEASURES].sum()
    if not _same(sums, silver_tables["time_series"].set_index(["date", "country_region"])[MEASURES]):
        raise ValueError("provinces do not sum to the time series")
    continent = gold_tables["covid19_continent_stats"]
    if any(continent[f"total_{m}"].sum() != silver_tables["country_wise"][m].sum() for m in MEASURES):
        raise ValueError("continent totals differ from the source")
    ordered = daily.sort_values(["country_region", "date"])
    decreases = {m: int((ordered.groupby("country_region")[m].diff() < 0).sum()) for m in MEASURES[:3]}
    negatives = {c: int((daily[c] < 0).sum()) for c in ["new_cases", "new_deaths", "new_recovered", "active"]}
    return {**{f"{m}_decreases": n for m, n in decreases.items()}, **{f"negative_{c}": n for c, n in negatives.items()}}


def _same(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Same keys and the same values (dtypes aside)."""
    left, right = left.sort_index(), right.sort_index()
    return left.index.equals(right.index) and bool((left.to_numpy("int64") == right.to_numpy("int64")).all())


def write_sqlite(path: Path, tables: dict[str, pd.DataFrame], keys: dict[str, list[str]]) -> None:
    with sqlite3.connect(path) as db:
        for name, frame in tables.items():
            columns = ", ".join(f'"{c}"' for c in frame.columns)
            db.execute(f'CREATE TABLE "{name}" ({columns}, PRIMARY KEY ({", ".join(keys[name])}))')
            values = frame.assign(**{c: frame[c].dt.strftime("%Y-%m-%d") for c in frame.columns if c == "date"})
            values = values.astype(object).where(values.notna(), None)
            db.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(frame.columns))})',
                           values.itertuples(index=False, name=None))


def read_sources(data_dir: Path) -> dict[str, pd.DataFrame]:
    return {name: read_source(schema, data_dir / schema.file_name) for name, schema in SOURCE_TABLES.items()}


def gold_from_files(data_dir: Path) -> dict[str, pd.DataFrame]:
    """The gold tables straight from the CSV files (the input of the warehouse benchmark)."""
    return gold(silver(read_sources(data_dir), load_country_reference()))


def run_floor(data_dir: Path, work_dir: Path) -> dict[str, int]:
    """The whole floor pipeline; returns rows per gold table."""
    sources = read_sources(data_dir)
    write_sqlite(work_dir / "source.db", sources, {n: list(s.primary_key) for n, s in SOURCE_TABLES.items()})
    lake = work_dir / "lake"
    lake.mkdir(exist_ok=True)
    with sqlite3.connect(work_dir / "source.db") as db:
        for name, schema in SOURCE_TABLES.items():
            frame = pd.read_sql_query(f"SELECT * FROM {name} ORDER BY {', '.join(schema.primary_key)}", db)
            for column in schema.columns:
                if column.type == "date":
                    frame[column.name] = pd.to_datetime(frame[column.name], format="%Y-%m-%d")
            frame.to_parquet(lake / f"bronze_{name}.parquet", index=False)
    bronze = {name: pd.read_parquet(lake / f"bronze_{name}.parquet") for name in SOURCE_TABLES}
    silver_tables = silver(bronze, load_country_reference())
    gold_tables = gold(silver_tables)
    check(silver_tables, gold_tables)
    for name, frame in gold_tables.items():
        frame.to_parquet(lake / f"gold_{name}.parquet", index=False)
    write_sqlite(work_dir / "warehouse.db", gold_tables, {n: list(t.primary_key) for n, t in WAREHOUSE_TABLES.items()})
    return {name: len(frame) for name, frame in gold_tables.items()}


if __name__ == "__main__":
    print(json.dumps({"rows": run_floor(Path(sys.argv[1]), Path(sys.argv[2]))}))
