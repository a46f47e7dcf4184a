"""The schema contract: a report's header against the catalog's columns."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_echo360.schema import SchemaDrift, expected_columns, schema_drift
from airflow_provider_echo360.transfers.echo360_to_s3 import TransferReportToS3Operator

VIDEOVIEW = expected_columns("videoview")


def test_the_catalog_is_found_by_any_name_of_a_report():
    assert VIDEOVIEW and expected_columns("VIDEOVIEW") == VIDEOVIEW
    assert expected_columns("qandav2") == expected_columns("qanda2") != ()
    assert expected_columns("a report the catalog does not know") == ()


@pytest.mark.parametrize(
    ("found", "drift"),
    [
        (list(VIDEOVIEW), SchemaDrift()),
        ([*VIDEOVIEW, "newColumn"], SchemaDrift(new=["newColumn"])),
        (list(VIDEOVIEW[:-1]), SchemaDrift(missing=[VIDEOVIEW[-1]])),
        (
            [f"{VIDEOVIEW[0]}_renamed", *VIDEOVIEW[1:]],
            SchemaDrift(renamed={VIDEOVIEW[0]: f"{VIDEOVIEW[0]}_renamed"}),
        ),
        ([], SchemaDrift()),  # a report without a byte has no header to hold to the catalog
    ],
)
def test_new_missing_and_renamed_columns_are_named(found, drift):
    assert schema_drift(VIDEOVIEW, found) == drift
    assert bool(drift) == bool(drift.describe())


def test_a_column_whose_name_the_page_lost_never_drifts():
    assert "email" in VIDEOVIEW
    real_name = ["user_email" if name == "email" else name for name in VIDEOVIEW]
    assert not schema_drift(VIDEOVIEW, real_name)
    without_it = [name for name in VIDEOVIEW if name != "email"]
    assert not schema_drift(VIDEOVIEW, without_it)
    wider = [*real_name, "newColumn"]  # another drift: the e-mail column is still not named
    assert schema_drift(VIDEOVIEW, wider) == SchemaDrift(new=["newColumn"])


def test_a_report_the_catalog_does_not_describe_has_no_contract():
    assert not schema_drift((), ["anything", "at all"])


def test_an_unknown_policy_is_refused_naming_the_field_and_the_choices():
    op = TransferReportToS3Operator(
        task_id="t", request_id="r1", s3_bucket="b", s3_key="k/", schema_policy="strict"
    )
    with pytest.raises(AirflowFailException, match="schema_policy.*warn, fail, allow"):
        op.execute({})
