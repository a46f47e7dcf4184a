"""The ``echo360`` connection form: its extra fields, labels and placeholders, written once.

Airflow 3.2 and later read them from the provider info (``conn-fields``, ``ui-field-behaviour``);
Airflow 2 and 3.0-3.1 ask the hook, which answers with :func:`form_widgets` and
:func:`field_behaviour` (on 3.0-3.1, only where Flask-AppBuilder is installed, as for every provider).
"""

from __future__ import annotations

from typing import Any

CONNECTION_TYPE: dict[str, Any] = {
    "connection-type": "echo360",
    "hook-class-name": "airflow_provider_echo360.hooks.echo360.Echo360Hook",
    "hook-name": "Echo360",
    "ui-field-behaviour": {
        # The port stays: Airflow 3.3's Test button sends port 0 for a connection stored without one,
        # and then refuses to test with the stored secret ("host or port ... differs").
        "hidden-fields": ["schema"],
        "relabeling": {
            "login": "Client ID",
            "password": "Client secret",
            "host": "Base URL (optional: overrides the region)",
            "port": "Port (443 for https; the Test button needs it)",
        },
        "placeholders": {
            "login": "the API client id an Echo360 admin created",
            "password": "the API client secret",
            "host": "https://echo360.org, or http://127.0.0.1:8360 for the sandbox",
            "port": "443, or 8360 for the sandbox",
        },
    },
    "conn-fields": {
        "region": {
            "label": "Region",
            "description": "Region of the institution (us, uk, au, ca); used when no base URL is given.",
            "schema": {"type": "string", "enum": ["us", "uk", "au", "ca"], "default": "us"},
        },
        "calls_per_minute": {
            "label": "Calls per minute",
            "description": "Client-side rate limit per process; the API allows 120 per institution.",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": 120},
        },
    },
}


def field_behaviour() -> dict[str, Any]:
    """Hidden fields, labels and placeholders of the standard fields (``get_ui_field_behaviour``)."""
    behaviour: dict[str, Any] = CONNECTION_TYPE["ui-field-behaviour"]
    return behaviour


def form_widgets() -> dict[str, Any]:
    """The extra fields as WTForms fields (``get_connection_form_widgets``).

    The older form takes only text, password, integer and boolean fields: the region is a text
    field that the hook checks (it names the allowed values when it is wrong).
    """
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField
    from wtforms.validators import NumberRange, Optional

    fields = CONNECTION_TYPE["conn-fields"]
    region, calls = fields["region"], fields["calls_per_minute"]
    return {
        "region": StringField(
            lazy_gettext(region["label"]),
            widget=BS3TextFieldWidget(),
            description=region["description"],
            default=region["schema"]["default"],
        ),
        "calls_per_minute": IntegerField(
            lazy_gettext(calls["label"]),
            widget=BS3TextFieldWidget(),
            description=calls["description"],
            validators=[Optional(), NumberRange(min=calls["schema"]["minimum"])],
            default=calls["schema"]["default"],
        ),
    }
