"""What the sandbox's contract tests share: its reporting API, called with plain ``requests``."""

from __future__ import annotations

import re
import time
from typing import Any

import requests
from devtools.sandbox import SandboxProcess

TIMEOUT = 10


def day(n: int) -> dict[str, str]:
    """A one-day window in January 2024 (distinct parameters per request)."""
    return {"start": f"2024-01-{n:02d}", "end": f"2024-01-{n + 1:02d}"}


class Api:
    """The sandbox's reporting API with a bearer ``token``, through a plain ``requests`` session:
    ``submit`` posts a report's parameters (``window`` where the call names none: ``day(1)`` unless the
    test module gives its own) and output options, ``submit_ok`` asserts a 200 and returns the answer's
    JSON, ``detail`` and ``wait`` read ``GET /request/{id}``, ``listing``, ``listed_ids`` and ``listed``
    the unpaged ``GET /requests`` (``requests_page_size`` 0) and ``pages`` every page of a paged one.
    """

    def __init__(self, sandbox: SandboxProcess, window: dict[str, str] | None = None) -> None:
        self.sandbox = sandbox
        self.window = day(1) if window is None else window
        self.token = sandbox.access_token()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.sandbox.api_url + path, timeout=TIMEOUT, **kwargs)

    def submit(
        self, report: str = "videoview", parameters: dict[str, str] | None = None, **output: Any
    ) -> requests.Response:
        body: dict[str, Any] = {"parameters": dict(self.window) if parameters is None else parameters}
        if output:
            body["output"] = output
        return self.session.post(f"{self.sandbox.api_url}/requests/{report}", json=body, timeout=TIMEOUT)

    def submit_ok(
        self, report: str = "videoview", parameters: dict[str, str] | None = None, **output: Any
    ) -> dict[str, Any]:
        response = self.submit(report, parameters, **output)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def detail(self, request_id: str) -> dict[str, Any]:
        response = self.get(f"/request/{request_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(self, request_id: str, timeout: float = 10) -> dict[str, Any]:
        """The request's detail once it is no longer ``Pending`` (or when ``timeout`` is up)."""
        deadline = time.monotonic() + timeout
        while True:
            detail = self.detail(request_id)
            if detail["status"] != "Pending" or time.monotonic() > deadline:
                return detail
            time.sleep(0.1)

    def listing(self) -> list[dict[str, Any]]:
        """``GET /requests`` unpaged (``requests_page_size`` must be 0)."""
        response = self.get("/requests")
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"requests"}
        return list(response.json()["requests"])

    def listed_ids(self) -> list[str]:
        return [r["requestId"] for r in self.listing()]

    def listed(self, request_id: str) -> dict[str, Any]:
        """The one entry of the listing with this id."""
        [found] = [r for r in self.listing() if r["requestId"] == request_id]
        return found

    def pages(self, paging: str) -> list[list[dict[str, Any]]]:
        """Every page of ``GET /requests``, following the announcements of the ``paging`` style."""
        pages: list[list[dict[str, Any]]] = []
        response = self.get("/requests")
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            pages.append(body["requests"])
            assert len(pages) < 500, "paging does not end"
            if paging == "link":
                following = body["next"]
                if following is None:
                    break
                assert following.startswith(self.sandbox.api_url + "/requests?")
                response = self.session.get(following, timeout=TIMEOUT)
            elif paging == "cursor":
                if body["nextCursor"] is None:
                    break
                response = self.get("/requests", params={"cursor": body["nextCursor"]})
            else:
                assert set(body) == {"requests"}
                link = response.headers.get("Link")
                if link is None:
                    break
                match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
                assert match, link
                response = self.session.get(match.group(1), timeout=TIMEOUT)
        return pages
