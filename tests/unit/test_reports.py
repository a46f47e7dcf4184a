from __future__ import annotations

import datetime as dt

import pendulum
import pytest

from airflow_provider_echo360.exceptions import Echo360ValidationError
from airflow_provider_echo360.reports import (
    CATALOG,
    DateOrderError,
    InvalidDateError,
    InvalidDelimiterError,
    LookbackExceededError,
    MissingParameterError,
    RangeTooLongError,
    ReportDefinition,
    UnexpectedParameterError,
    UnknownReportError,
    resolve_definition,
    split_windows,
    to_utc_date,
    validate_output,
    validate_parameters,
)

SEED_IDENTIFIERS = {
    "asset",
    "assetbydate",
    "presentation",
    "videoview",
    "liveviews",
    "viewsessions",
    "viewsessiondetails",
    "confused",
    "polling",
    "pollingv2",
    "qanda",
    "qanda2",
    "notes",
}


def test_catalog_has_the_13_seed_reports_with_parameters_and_columns():
    assert set(CATALOG) == SEED_IDENTIFIERS
    assert CATALOG["asset"].parameters == ()
    assert all(CATALOG[name].parameters == ("start", "end") for name in SEED_IDENTIFIERS - {"asset"})
    assert {name for name, d in CATALOG.items() if d.deprecated} == {"polling", "qanda"}
    assert len(CATALOG["asset"].columns) == 25
    assert CATALOG["liveviews"].columns[-1] == "eventTimestamp"
    assert CATALOG["presentation"].columns[11] == "email"
    assert CATALOG["pollingv2"].columns[21] == "userEmail"
    assert all(len(set(d.columns)) == len(d.columns) > 0 for d in CATALOG.values())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-02-02", dt.date(2024, 2, 2)),
        (dt.date(2024, 2, 2), dt.date(2024, 2, 2)),
        (dt.datetime(2024, 2, 2), dt.date(2024, 2, 2)),
        (dt.datetime(2024, 2, 2, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))), dt.date(2024, 2, 3)),
        (pendulum.datetime(2024, 2, 2, tz="UTC"), dt.date(2024, 2, 2)),
        (pendulum.date(2024, 2, 2), dt.date(2024, 2, 2)),
        ("2024-02-02T00:00:00+00:00", dt.date(2024, 2, 2)),
        ("2024-02-02T01:00:00Z", dt.date(2024, 2, 2)),
    ],
)
def test_dates_are_accepted_and_converted_to_utc(value, expected):
    result = to_utc_date(value, "start")
    assert result == expected
    assert type(result) is dt.date


@pytest.mark.parametrize(
    "value", ["yesterday", "2024-13-01", "02/02/2024", "", dt.datetime(2024, 2, 2, 14, 0), 20240202, None]
)
def test_unparsable_or_naive_non_midnight_dates_are_refused(value):
    with pytest.raises(InvalidDateError) as err:
        to_utc_date(value, "start")
    assert "start" in str(err.value)
    assert err.value.field == "start"


def test_start_must_be_before_end():
    assert validate_parameters("videoview", {"start": "2024-02-02", "end": "2024-02-03"}) == {
        "start": "2024-02-02",
        "end": "2024-02-03",
    }
    with pytest.raises(DateOrderError, match="end='2024-02-02'.*after start=2024-02-02"):
        validate_parameters("videoview", {"start": "2024-02-02", "end": "2024-02-02"})
    with pytest.raises(DateOrderError):
        validate_parameters("videoview", {"start": "2024-02-05", "end": "2024-02-02"})


def test_window_of_7_days_passes_and_8_is_refused():
    assert validate_parameters("notes", {"start": "2024-02-01", "end": "2024-02-08"})["end"] == "2024-02-08"
    with pytest.raises(RangeTooLongError, match="at most 7 days.*end <= 2024-02-08"):
        validate_parameters("notes", {"start": "2024-02-01", "end": "2024-02-09"})


def test_assetbydate_reaches_back_one_year_relative_to_today():
    today = dt.date(2026, 11, 27)
    ok = validate_parameters("assetbydate", {"start": "2025-11-27", "end": "2025-11-28"}, today=today)
    assert ok["start"] == "2025-11-27"
    with pytest.raises(LookbackExceededError, match="on or after 2025-11-27"):
        validate_parameters("assetbydate", {"start": "2025-11-26", "end": "2025-11-28"}, today=today)
    # Other reports have no look-back rule.
    assert validate_parameters("videoview", {"start": "2020-01-01", "end": "2020-01-02"}, today=today)


def test_asset_takes_no_parameters():
    assert validate_parameters("asset", None) == {}
    assert validate_parameters("asset", {}) == {}
    with pytest.raises(UnexpectedParameterError, match="no parameters for report 'asset'"):
        validate_parameters("asset", {"start": "2024-02-01", "end": "2024-02-02"})


def test_dated_reports_require_start_and_end():
    with pytest.raises(MissingParameterError) as err:
        validate_parameters("videoview", {"start": "2024-02-01"})
    assert err.value.field == "end"
    with pytest.raises(UnexpectedParameterError, match="only \\['end', 'start'\\]"):
        validate_parameters("videoview", {"start": "2024-02-01", "end": "2024-02-02", "course": "x"})


@pytest.mark.parametrize(
    ("given", "sent"), [(",", ","), ("\t", "\t"), ("|", "|"), ("tab", "\t"), ("\\t", "\t")]
)
def test_delimiters_accepted(given, sent):
    assert validate_output(True, given) == (True, sent)


@pytest.mark.parametrize("delimiter", [";", "", None, ",,", " "])
def test_other_delimiters_refused_naming_the_allowed_ones(delimiter):
    with pytest.raises(
        InvalidDelimiterError, match=r"delimiter=.*allowed is ',' \(CSV\), '\\t' \(TSV\) or '\|'"
    ):
        validate_output(True, delimiter)


def test_compression_must_be_a_boolean():
    with pytest.raises(Echo360ValidationError, match="compression"):
        validate_output("yes", ",")


def test_unknown_name_is_not_an_error_by_itself():
    # A name the catalog does not know passes on its own; its dates are still checked.
    assert (
        validate_parameters("qandav2", {"start": "2024-02-01", "end": "2024-02-02"})["start"] == "2024-02-01"
    )
    with pytest.raises(RangeTooLongError):
        validate_parameters("qandav2", {"start": "2024-02-01", "end": "2024-03-01"})


def test_live_listing_is_the_authority_for_names():
    listing = [
        {
            "name": "qandav2",
            "parameters": [
                {"name": "start", "datatype": "date", "required": True},
                {"name": "end", "datatype": "date", "required": True},
            ],
        },
        {"name": "asset", "parameters": []},
    ]
    definition = resolve_definition("qandav2", listing)
    assert definition == ReportDefinition("qandav2", parameters=("start", "end"))
    assert resolve_definition("asset", listing) is CATALOG["asset"]
    with pytest.raises(UnknownReportError, match="report_name='nope'.*\\['asset', 'qandav2'\\]"):
        resolve_definition("nope", listing)
    with pytest.raises(UnknownReportError, match="report_name='nope'"):
        resolve_definition("nope")


def test_errors_fail_tasks_without_retries():
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(AirflowFailException):
        validate_output(True, ";")


def test_thirty_days_split_into_five_adjacent_windows_the_last_short():
    windows = split_windows("2024-01-01", "2024-01-31")
    assert len(windows) == 5
    assert windows[0] == (dt.date(2024, 1, 1), dt.date(2024, 1, 8))
    assert windows[-1] == (dt.date(2024, 1, 29), dt.date(2024, 1, 31))
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    assert all(0 < (e - s).days <= 7 for s, e in windows)


def test_seven_days_is_one_window():
    assert split_windows(dt.date(2024, 1, 1), dt.date(2024, 1, 8)) == [
        (dt.date(2024, 1, 1), dt.date(2024, 1, 8))
    ]


@pytest.mark.parametrize(("start", "end"), [("2024-01-01", "2024-01-01"), ("2024-01-05", "2024-01-01")])
def test_empty_or_inverted_ranges_refuse(start, end):
    with pytest.raises(DateOrderError):
        split_windows(start, end)
