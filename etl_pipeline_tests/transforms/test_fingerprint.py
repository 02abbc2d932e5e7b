"""Content fingerprints (the source tables' data versions): the same rows give the same fingerprint whatever their
order and batching; any change to a row changes the fingerprint of the table and of that row's date only."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from etl_pipeline.transforms.fingerprint import content_fingerprint

DAY_1, DAY_2 = dt.date(2020, 3, 1), dt.date(2020, 3, 2)
TABLE = pa.table({
    "date": pa.array([DAY_1, DAY_1, DAY_2, DAY_2], pa.date32()),
    "country_region": ["Chad", "Côte d'Ivoire", "Chad", "Côte d'Ivoire"],
    "confirmed": pa.array([1, None, 2**62, 0], pa.int64()),
    "lat": pa.array([15.45, 7.54, None, 7.54], pa.float64()),
})


def with_value(column: str, row: int, value) -> pa.Table:
    values = TABLE.column(column).to_pylist()
    values[row] = value
    return TABLE.set_column(TABLE.schema.get_field_index(column), column, pa.array(values, TABLE.schema.field(column).type))


def test_order_and_batching_do_not_matter() -> None:
    whole = content_fingerprint(TABLE.to_batches(), "date")
    # one row per batch, reversed: the batch holding the NULL confirmed no longer holds an integer next to it
    shuffled = content_fingerprint(TABLE.take([3, 2, 1, 0]).to_batches(max_chunksize=1), "date")
    assert shuffled == whole
    assert whole.rows == 4 and sorted(whole.by_date) == ["2020-03-01", "2020-03-02"]
    assert all(entry.startswith("2-") for entry in whole.by_date.values())  # two rows each day


def test_a_changed_value_changes_the_table_and_its_date_only() -> None:
    before = content_fingerprint(TABLE.to_batches(), "date")
    for changed in (with_value("confirmed", 2, 2**62 + 1), with_value("lat", 2, 0.0),
                    with_value("country_region", 3, "Cote d'Ivoire"), with_value("confirmed", 3, None)):
        after = content_fingerprint(changed.to_batches(), "date")
        assert after.data_version != before.data_version
        assert after.by_date["2020-03-01"] == before.by_date["2020-03-01"]
        assert after.by_date["2020-03-02"] != before.by_date["2020-03-02"]


def test_a_removed_or_duplicated_row_changes_the_fingerprint() -> None:
    before = content_fingerprint(TABLE.to_batches(), "date")
    assert content_fingerprint(TABLE.slice(0, 3).to_batches(), "date").data_version != before.data_version
    doubled = pa.concat_tables([TABLE, TABLE.slice(0, 1)])
    assert content_fingerprint(doubled.to_batches(), "date").by_date["2020-03-01"].startswith("3-")


def test_an_undated_table_has_one_fingerprint() -> None:
    undated = TABLE.drop_columns(["date"])
    fingerprint = content_fingerprint(undated.to_batches())
    assert fingerprint.by_date == {} and fingerprint.rows == 4
    assert fingerprint == content_fingerprint(undated.take([1, 0, 3, 2]).to_batches(max_chunksize=3))
