"""Apache Airflow provider for the Echo360 Reporting API."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

INTEGRATION = "Echo360"
# Every module of each role, as Airflow's provider registry lists them.
_MODULES = {
    "hooks": [
        "airflow_provider_echo360.hooks.echo360",
        "airflow_provider_echo360.hooks.model",
        "airflow_provider_echo360.hooks.transport",
    ],
    "operators": ["airflow_provider_echo360.operators.echo360"],
    "sensors": ["airflow_provider_echo360.sensors.echo360"],
    "triggers": ["airflow_provider_echo360.triggers.echo360"],
}
_TRANSFERS = [
    {
        "source-integration-name": INTEGRATION,
        "target-integration-name": "Amazon Simple Storage Service (S3)",
        "python-module": "airflow_provider_echo360.transfers.echo360_to_s3",
    }
]


def get_provider_info() -> dict[str, Any]:
    """Describe this provider to Airflow's ProvidersManager (the ``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-provider-echo360",
        "name": "Echo360",
        "description": "Echo360 Reporting API: submit reports, wait for them deferred, land them in S3.",
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["service"]}],
        **{
            role: [{"integration-name": INTEGRATION, "python-modules": names}]
            for role, names in _MODULES.items()
        },
        "transfers": _TRANSFERS,
        "connection-types": [_CONNECTION_TYPE],
    }


_CONNECTION_TYPE = {
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
