"""A faithful local emulator of the Echo360 Reporting API, as a real HTTP server (FastAPI + uvicorn).

- run it: ``python -m airflow_provider_echo360.sandbox --port 8360`` (``--help`` lists every option);
- drive it from tests: :class:`airflow_provider_echo360.sandbox.process.SandboxProcess`;
- embed it: :func:`airflow_provider_echo360.sandbox.app.create_app`.

This module imports nothing, so that ``python -m`` can prepare the environment before the app (and,
through the provider's exceptions, Airflow) is imported.
"""
