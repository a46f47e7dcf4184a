"""A local emulator of the Echo360 Reporting API, as a real HTTP server (FastAPI + uvicorn).

Written from the vendor's public page alone; every behaviour the page leaves open is an option
(a "dialect"), so that a client can be tested against each way the real service might behave.

- run it: ``python -m echo360_sandbox --port 8360`` (``--help`` lists every option);
- drive a running one: :class:`echo360_sandbox.client.SandboxClient` (its control endpoints);
- embed it: :func:`echo360_sandbox.app.create_app`.

This module imports nothing, so that ``python -m echo360_sandbox --help`` answers at once.
"""

__version__ = "1.0.0"
