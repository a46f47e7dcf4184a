"""Apache Airflow provider for the Echo360 Reporting API."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Describe this provider to Airflow's ProvidersManager (the ``apache_airflow_provider`` entry point)."""
    return {
        "package-name": "airflow-provider-echo360",
        "name": "Echo360",
        "description": "Echo360 Reporting API: submit reports, wait for them deferred, land them in S3.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "echo360",
                "hook-class-name": "airflow_provider_echo360.hooks.echo360.Echo360Hook",
            }
        ],
    }
