"""The SQL text of a warehouse load, exactly (pure: no database)."""

from __future__ import annotations

from etl_pipeline.core.warehouse_model import WarehouseColumn, WarehouseTable
from etl_pipeline.resources import warehouse_sql as sql

SALES = WarehouseTable(
    name="sales",
    comment="Sales per day\nand shop",
    columns=(
        WarehouseColumn("day", "date", "Day"),
        WarehouseColumn("shop", "text", "Shop\n name"),
        WarehouseColumn("amount", "double", "Amount", nullable=True),
    ),
    primary_key=("day", "shop"),
    indexes=(("shop",), ("shop", "day")),
)
KEYS_ONLY = WarehouseTable("days", "Days", (WarehouseColumn("day", "date", "Day"),), ("day",))
TYPES = {"text": "text", "date": "date", "double": "double precision"}
STAGE = '"_stage_sales"'


def test_identifiers_are_double_quoted_with_inner_quotes_doubled() -> None:
    assert sql.quote("sales") == '"sales"'
    assert sql.quote('a"b') == '"a""b"'


def test_column_definitions() -> None:
    assert sql.column_definitions(SALES, TYPES) == (
        '\n  "day" date NOT NULL,'
        '\n  "shop" text NOT NULL,'
        '\n  "amount" double precision,'
        '\n  PRIMARY KEY ("day", "shop")\n'
    )


def test_column_definitions_with_comments_on_one_line_each() -> None:
    assert sql.column_definitions(SALES, TYPES, comments=True) == (
        '\n  "day" date NOT NULL,  -- Day'
        '\n  "shop" text NOT NULL,  -- Shop name'
        '\n  "amount" double precision,  -- Amount'
        '\n  PRIMARY KEY ("day", "shop")\n'
    )


def test_column_definitions_of_a_stage_without_its_key() -> None:
    assert sql.column_definitions(SALES, TYPES, primary_key=False) == (
        '\n  "day" date NOT NULL,'
        '\n  "shop" text NOT NULL,'
        '\n  "amount" double precision\n'
    )


def test_index_statements() -> None:
    assert sql.index_statements(SALES) == [
        'CREATE INDEX IF NOT EXISTS "ix_sales__shop" ON "sales" ("shop")',
        'CREATE INDEX IF NOT EXISTS "ix_sales__shop_day" ON "sales" ("shop", "day")',
    ]
    assert sql.index_statements(KEYS_ONLY) == []


def test_new_rows_sql() -> None:
    assert sql.new_rows_sql(SALES, STAGE) == (
        'SELECT count(*) FROM "_stage_sales" WHERE NOT EXISTS (SELECT 1 FROM "sales" '
        'WHERE "sales"."day" = "_stage_sales"."day" AND "sales"."shop" = "_stage_sales"."shop")'
    )


def test_upsert_sql_updates_only_rows_whose_values_differ() -> None:
    assert sql.upsert_sql(SALES, STAGE, "IS DISTINCT FROM") == (
        'INSERT INTO "sales" ("day", "shop", "amount") SELECT "day", "shop", "amount" FROM "_stage_sales" '
        'WHERE true ORDER BY "day", "shop" ON CONFLICT ("day", "shop") DO UPDATE SET "amount" = excluded."amount" '
        'WHERE ("sales"."amount") IS DISTINCT FROM (excluded."amount")'
    )


def test_upsert_sql_of_a_table_that_is_all_key_does_nothing_on_conflict() -> None:
    assert sql.upsert_sql(KEYS_ONLY, '"_stage_days"', "IS NOT") == (
        'INSERT INTO "days" ("day") SELECT "day" FROM "_stage_days" WHERE true ORDER BY "day" '
        'ON CONFLICT ("day") DO NOTHING'
    )


def test_delete_sql() -> None:
    assert sql.delete_sql(SALES, STAGE) == (
        'DELETE FROM "sales" WHERE NOT EXISTS (SELECT 1 FROM "_stage_sales" '
        'WHERE "_stage_sales"."day" = "sales"."day" AND "_stage_sales"."shop" = "sales"."shop")'
    )


def test_select_sql_orders_by_the_primary_key() -> None:
    assert sql.select_sql(SALES) == 'SELECT "day", "shop", "amount" FROM "sales" ORDER BY "day", "shop"'
