"""Errors raised by the Echo360 provider.

Errors that no retry can fix derive from Airflow's ``AirflowFailException`` so that a task raising
them fails at once, without spending its retries.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class Echo360Error(AirflowException):
    """Base class of every error raised by this provider."""


class Echo360AuthError(Echo360Error, AirflowFailException):
    """The API refused the connection's credentials (retrying with the same ones cannot help)."""


class Echo360SubmissionRefusedError(Echo360Error):
    """The API refused a submission with a 4xx (other than 401 and 404).

    Which status and which words refuse a 4th request in flight is undocumented, so the hook cannot
    tell that refusal from any other: the operator decides by the state of the institution.

    :param status_code: the HTTP status of the answer.
    :param message: the API's own message.
    """

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"Echo360 refused the submission ({status_code}): {message}")
        self.http_status = status_code
        self.api_message = message


class Echo360TransientError(Echo360Error):
    """The API kept answering 5xx/429, or the network kept failing, through every retry.

    :param http_status: the last answer's status, or ``None`` when the network failed.
    """

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class Echo360AssetUrlExpiredError(Echo360Error):
    """A signed asset URL was refused (400, 403, 404): it expired or its signature no longer holds."""


class Echo360DownloadError(Echo360Error):
    """An asset download failed, broke off or delivered fewer bytes than announced: start it over."""


class Echo360DownloadUnreachableError(Echo360DownloadError, Echo360TransientError):
    """A signed URL could not be reached, its retries spent: an outage, waited out as the API's are."""


class Echo360SchemaError(Echo360Error, AirflowFailException):
    """A report's header is not the catalog's and the transfer's ``schema_policy`` is ``fail``."""


class Echo360ApiError(Echo360Error, AirflowFailException):
    """The API refused a call for a reason a retry cannot fix (a 4xx other than 401 and 429).

    :param status_code: the HTTP status (kept as ``http_status``) of the answer.
    :param message: the API's own message, with nothing secret in it.
    """

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"Echo360 API answered {status_code}: {message}")
        self.http_status = status_code
        self.api_message = message


class Echo360RequestNotFoundError(Echo360ApiError):
    """The API knows no request with this id (retrying cannot help)."""


class Echo360ValidationError(Echo360Error, AirflowFailException, ValueError):
    """Input refused before any call to the API.

    :param field: the name of the offending field (``start``, ``delimiter``, ``report_name`` ...).
    :param value: the value that was given.
    :param allowed: what would have been accepted.
    """

    def __init__(self, field: str, value: Any, allowed: str, reason: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        what = f"{reason}: " if reason else ""
        super().__init__(f"Invalid {field}={value!r}: {what}allowed is {allowed}.")


class Echo360RequestFailedError(Echo360Error, AirflowFailException):
    """A report request ended in a terminal status other than ``Available``.

    :param request_id: the Echo360 request id.
    :param status: ``Failed``, ``Missing`` or ``Expired``.
    """

    def __init__(self, request_id: str, status: str, message: str | None = None) -> None:
        self.request_id = request_id
        self.status = status
        advice = {
            "Expired": "its report was deleted after the retention period; submit the report again",
            "Failed": "the report execution failed; try again or contact Echo360 support with the id",
            "Missing": "the report was not executed for an extended period; try again or contact "
            "Echo360 support with the id",
        }.get(status, "the report is not available")
        super().__init__(message or f"Echo360 report request {request_id} is {status}: {advice}.")


class Echo360WaitError(Echo360Error):
    """Waiting for a request ended without an answer (deadline, or the API unreachable for too long).

    A task retry is worthwhile: it adopts the same request and waits again.
    """
