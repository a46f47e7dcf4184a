"""A small client of a running sandbox: its ``/_sandbox`` control endpoints and its token endpoint.

    client = SandboxClient("http://127.0.0.1:8360")
    client.set_faults(fault_rate=1.0, faults=["5xx"])
    assert client.stats()["max_in_flight"] <= 3

It starts nothing: run the server with ``python -m echo360_sandbox`` (or any process manager).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter, Retry

from echo360_sandbox.config import SandboxConfig

# app.API_PREFIX and app.TOKEN_PATH, repeated: this module needs no FastAPI.
API_PREFIX = "/public/api/v1/reporting"
TOKEN_PATH = "/oauth2/access_token"


class SandboxClient:
    """Calls to the sandbox at ``base_url`` (``http://HOST:PORT``).

    :param client_id: the OAuth2 client id the sandbox accepts (``--client-id``).
    :param client_secret: the OAuth2 client secret the sandbox accepts (``--client-secret``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str = SandboxConfig.client_id,
        client_secret: str = SandboxConfig.client_secret,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self._http = requests.Session()
        # The control endpoints are the harness's, not the API under test: a kept-alive connection
        # that the server closes (after 5 idle seconds) just as a call reuses it is tried again on a
        # new one. The token endpoint's calls are not: they are what a test looks at.
        self._control_http = requests.Session()
        retry = Retry(total=2, connect=2, read=2, status=0, other=0, allowed_methods=None, backoff_factor=0.1)
        self._control_http.mount("http://", HTTPAdapter(max_retries=retry))

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    def _control(self, method: str, path: str, json: Any = None) -> Any:
        response = self._control_http.request(
            method, f"{self.base_url}/_sandbox{path}", json=json, timeout=30
        )
        if not response.ok:
            raise requests.HTTPError(
                f"{method} /_sandbox{path} answered {response.status_code}: {response.text}",
                response=response,
            )
        return response.json()

    def stats(self) -> dict[str, Any]:
        """``GET /_sandbox/stats``: what the sandbox saw."""
        return dict(self._control("GET", "/stats"))

    def faults(self) -> dict[str, Any]:
        """The current fault settings."""
        return dict(self._control("GET", "/faults"))

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Change fault settings at runtime: ``fault_rate``, ``faults``, ``fault_targets``,
        ``fault_budget``, ``failed_rate``, ``missing_rate``, ``slow_seconds``."""
        return dict(self._control("POST", "/faults", settings))

    def config(self) -> dict[str, Any]:
        """The current settings (client secret masked)."""
        return dict(self._control("GET", "/config"))

    def set_config(self, **settings: Any) -> dict[str, Any]:
        """Change settings a running sandbox can change (``processing_seconds``, ``rate_limit``, ...)."""
        return dict(self._control("POST", "/config", settings))

    def reset(self, *, faults: bool = False, config: bool = False) -> None:
        """Forget requests and stats; ``faults``/``config`` also restore the starting settings."""
        self._control("POST", "/reset", {"faults": faults, "config": config})

    def outage(
        self, *, unavailable_seconds: float = 0.0, refused_seconds: float = 0.0, after_seconds: float = 0.0
    ) -> dict[str, Any]:
        """Schedule an outage, replacing any other (``POST /_sandbox/outage``): ``after_seconds`` from
        now, every API, token and download call answers 503 for ``unavailable_seconds``; then
        connections are refused for ``refused_seconds`` (the control endpoints too: calls then raise
        ``requests.ConnectionError``); then the sandbox serves again, its state intact. A reset
        cancels it.

        :returns: the schedule, as :meth:`outage_status` shows it.
        """
        settings = {
            "unavailable_seconds": unavailable_seconds,
            "refused_seconds": refused_seconds,
            "after_seconds": after_seconds,
        }
        return dict(self._control("POST", "/outage", settings))

    def outage_status(self) -> dict[str, Any]:
        """``GET /_sandbox/outage``: the outage's ``phase`` (``none``, ``scheduled``, ``unavailable``,
        ``refused``, ``over``), its lengths and times (``unavailable_from``, ``refused_from``,
        ``back_at``)."""
        return dict(self._control("GET", "/outage"))

    def secrets(self) -> dict[str, list[str]]:
        """The client secret and every access token, refresh token and URL signature issued."""
        return dict(self._control("GET", "/secrets"))

    def expire_tokens(self) -> int:
        """Expire every access token issued so far; how many there were."""
        return int(self._control("POST", "/tokens/expire")["expired"])

    def expire_requests(self) -> int:
        """Expire every ``Available`` request (as the retention does after 14 days); how many there were."""
        return int(self._control("POST", "/requests/expire")["expired"])

    def set_status(self, request_id: str, status: str) -> dict[str, Any]:
        """Force a request's status (``Available``, ``Failed``, ``Missing``, ``Expired``, ``Pending``, in
        any case; or a status the page does not name, any other name of letters such as ``Cancelled``,
        which ends the request: it no longer counts as in flight)."""
        return dict(self._control("POST", f"/requests/{request_id}/status", {"status": status}))

    def request_info(self, request_id: str) -> dict[str, Any]:
        """A request as the sandbox knows it (outcome, output options, asset names)."""
        return dict(self._control("GET", f"/requests/{request_id}"))

    def submit_as(
        self, client_id: str, report_name: str, parameters: Mapping[str, Any] | None = None, **output: Any
    ) -> dict[str, Any]:
        """Create a request as if another API client of the institution (``client_id``) had submitted it.

        It counts toward the institution's in-flight limit (without being refused by it), shows in
        ``institution``-scoped listings only, and is counted in the stats as ``injected``.

        :param output: output options (``compression``, ``delimiter``).
        :returns: the request as the API shows it, plus ``clientId``.
        """
        body = {
            "reportName": report_name,
            "parameters": dict(parameters or {}),
            "clientId": client_id,
            "output": output,
        }
        return dict(self._control("POST", "/requests", body))

    def asset_bytes(self, request_id: str, filename: str) -> bytes:
        """The exact bytes the signed link of ``filename`` serves (no faults, no signature)."""
        response = self._control_http.get(
            f"{self.base_url}/_sandbox/requests/{request_id}/assets/{filename}", timeout=300
        )
        response.raise_for_status()
        return response.content

    def access_token(self) -> str:
        """A fresh access token from the token endpoint, asked the way the sandbox's ``token_auth``
        dialect reads credentials (a form body, unless it only reads the query or HTTP Basic)."""
        token_auth = self.config()["token_auth"]
        fields = {"grant_type": "client_credentials", "client_id": self.client_id}
        secret = {"client_secret": self.client_secret}
        if token_auth == "query":
            response = self._http.post(self.token_url, params={**fields, **secret}, timeout=30)
        elif token_auth == "basic":
            auth = (self.client_id, self.client_secret)
            response = self._http.post(self.token_url, data=fields, auth=auth, timeout=30)
        else:
            response = self._http.post(self.token_url, data={**fields, **secret}, timeout=30)
        response.raise_for_status()
        return str(response.json()["access_token"])
