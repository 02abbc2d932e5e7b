from __future__ import annotations

import pandas as pd
import pytest

from etl_pipeline.transforms.countries import (
    CONTINENTS,
    REFERENCE_COLUMNS,
    country_reference_df,
    load_country_reference,
    validate_reference,
    worldometer_spellings,
    worldometer_spellings_df,
)

pytestmark = pytest.mark.engines  # the same results on Apache Spark and on Sail


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return load_country_reference()


def test_reference_lists_every_jhu_country_once_with_a_continent(reference, raw):
    jhu = set(raw["covid19_time_series"]["Country/Region"])
    assert len(jhu) == 187
    assert sorted(reference["country_region"]) == sorted(jhu)
    assert set(reference["continent"]) == set(CONTINENTS)


def test_reference_names_worldometer_rows_and_agrees_with_their_continents(reference, raw, renamed):
    worldometer = raw["covid19_worldometer"].assign(name=lambda w: w["Country/Region"].str.strip())
    continent_of = dict(zip(worldometer["name"], worldometer["Continent"].replace({"Australia/Oceania": "Oceania"})))
    present = reference[reference["worldometer_name"] != ""]

    assert len(present) == 185
    assert set(present["worldometer_name"]) <= set(continent_of)
    assert [
        (r.country_region, r.continent, continent_of[r.worldometer_name])
        for r in present.itertuples()
        if r.continent != continent_of[r.worldometer_name]
    ] == []
    expected_names = {jhu: renamed.get(jhu, jhu).strip() for jhu in present["country_region"]}
    assert dict(zip(present["country_region"], present["worldometer_name"])) == expected_names


def test_countries_absent_from_worldometer_have_a_reviewed_continent(reference, absent_from_worldometer):
    absent = reference[reference["worldometer_name"] == ""]
    assert dict(zip(absent["country_region"], absent["continent"])) == {"China": "Asia", "Kosovo": "Europe"}
    assert set(absent["country_region"]) == absent_from_worldometer


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("Kosovo", "", "Europe", ""), ("Kosovo", "", "Europe", "")], "country_region listed more than once"),
        ([("Congo (Brazzaville)", "Congo", "Africa", ""), ("Congo (Kinshasa)", "Congo", "Africa", "")],
         "worldometer_name listed more than once"),
        ([("Congo (Brazzaville)", "Congo", "Africa", ""), ("Congo (Kinshasa)", "DRC", "Africa", "Congo|Zaire")],
         r"spellings of more than one country: \{'Congo': \['Congo \(Brazzaville\)', 'Congo \(Kinshasa\)'\]\}"),
        ([("Taiwan*", "Taiwan", "Asia", ""), ("China", "", "Asia", "Taiwan*")], "spellings of more than one country"),
        ([("Australia", "Australia", "Australia/Oceania", "")], "continent must be one of"),
    ],
)

def test_validate_reference_rejects_bad_edits(rows, message):
    frame = pd.DataFrame(rows, columns=REFERENCE_COLUMNS)
    with pytest.raises(ValueError, match=message):
        validate_reference(frame)


def test_a_worldometer_row_may_use_the_reviewed_name_the_jhu_name_or_an_alias(reference):
    spellings = dict(worldometer_spellings(reference))
    # worldometer's own names, written out by hand from shared/data/README.md (conftest.WORLDOMETER_NAMES)
    assert (spellings["S. Korea"], spellings["USA"], spellings["Myanmar"]) == ("South Korea", "US", "Burma")
    # the JHU names themselves: a worldometer snapshot that spells a country as JHU does still matches
    assert {jhu: spellings[jhu] for jhu in ("South Korea", "US", "Burma", "China", "Kosovo")} == {
        jhu: jhu for jhu in ("South Korea", "US", "Burma", "China", "Kosovo")}
    # former or alternative names
    assert (spellings["Czech Republic"], spellings["Swaziland"], spellings["United States"]) == (
        "Czechia", "Eswatini", "US")
    assert len(spellings) == len(worldometer_spellings(reference))  # no spelling belongs to two countries


def test_worldometer_spellings_df_is_the_lookup_of_the_packaged_reference(spark, reference):
    frame = worldometer_spellings_df(spark)
    assert frame.schema.fieldNames() == ["worldometer_name", "country_region"]
    assert sorted(tuple(r) for r in frame.collect()) == sorted(worldometer_spellings(reference))


def test_country_reference_df_has_null_for_absent_worldometer_names(spark, reference):
    frame = country_reference_df(spark)
    assert frame.schema.fieldNames() == ["country_region", "worldometer_name", "continent"]
    rows = {r.country_region: (r.worldometer_name, r.continent) for r in frame.collect()}
    assert len(rows) == len(reference)
    assert rows["Kosovo"] == (None, "Europe")
    assert rows["US"] == ("USA", "North America")
