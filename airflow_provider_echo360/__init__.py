"""Apache Airflow provider for the Echo360 Reporting API."""

from __future__ import annotations

from typing import Any

from airflow_provider_echo360.hooks.connection_form import CONNECTION_TYPE

__version__ = "0.1.0"

INTEGRATION = "Echo360"
# Every module of each role, as Airflow's provider registry lists them.
_MODULES = {
    "hooks": [
        "airflow_provider_echo360.hooks.echo360",
        "airflow_provider_echo360.hooks.connection_form",
        "airflow_provider_echo360.hooks.masking",
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
        "connection-types": [CONNECTION_TYPE],
    }
