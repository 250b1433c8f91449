"""One HTTP session to SAP's sales-order OData v2 service: settings, timeouts, CSRF token, retries.

Everything here is about talking to the service, nothing about what the data means. The settings come
from an Airflow connection (see :meth:`SapSettings.from_connection`); credentials stay in it and are
never logged.

Reads are idempotent, so :meth:`ODataClient.get_json` retries them on 429 (waiting as long as
``Retry-After`` says), on 5xx and on dropped connections, with exponential backoff. Changes are not
retried here: after a lost response only the caller knows whether to read back before trying again
(see :mod:`include.sap.writeback`).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_PATH = "/sap/opu/odata/sap/API_SALES_ORDER_SRV"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
WRITEBACK_MODES = ("custom_field", "delivery_block")


class SapError(RuntimeError):
    """Talking to SAP failed; the message names the URL and what went wrong."""


class SapODataError(SapError):
    """SAP answered with an error status; ``code`` and ``sap_message`` come from its error body."""

    def __init__(self, status: int, url: str, code: str | None, sap_message: str | None) -> None:
        self.status = status
        self.url = url
        self.code = code
        self.sap_message = sap_message
        super().__init__(
            f"SAP answered {status} to {url}: {code or 'no code'}: {sap_message or 'no message'}"
        )

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUS


class SapConnectionLost(SapError):
    """The connection dropped or timed out: a change sent may or may not have been applied."""


@dataclass(frozen=True)
class SapSettings:
    """How to reach the service and how hard to try. Built from an Airflow connection.

    Connection fields: ``host`` (a name, or a whole ``https://...`` address), ``port``, ``schema`` (the
    URL scheme, ``https`` when empty), ``login`` and ``password`` (basic auth). Every other setting is
    a key of the connection's ``extra`` with the same name as the field below.
    """

    base_url: str
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    service_path: str = DEFAULT_SERVICE_PATH
    sap_client: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    page_size: int = 500
    verify: bool | str = True
    max_attempts: int = 6
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 60.0
    writeback_mode: str = "custom_field"
    writeback_field: str = "YY1_HoldcastRisk_SDH"
    writeback_field_length: int = 60
    delivery_block_reason: str = "Z1"
    workers: int = 4

    def __post_init__(self) -> None:
        if self.writeback_mode not in WRITEBACK_MODES:
            raise ValueError(f"writeback_mode {self.writeback_mode!r}: expected one of {WRITEBACK_MODES}")
        for name in ("page_size", "max_attempts", "workers", "writeback_field_length"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        if not 0 < len(self.delivery_block_reason) <= 2:
            raise ValueError(
                f"delivery_block_reason {self.delivery_block_reason!r}: expected 1 or 2 characters"
            )

    @property
    def service_url(self) -> str:
        return self.base_url.rstrip("/") + "/" + self.service_path.strip("/")

    @classmethod
    def from_connection(cls, conn: Any) -> SapSettings:
        """Read an Airflow connection; an unknown ``extra`` key fails naming it (typos are not ignored)."""
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(f"connection {conn.conn_id!r}: host is empty; expected the SAP server's address")
        if "://" in host:
            base = host
        else:
            base = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
        extra = dict(conn.extra_dejson or {})
        defaults = {f.name: f.default for f in fields(cls) if f.name not in ("base_url", "login", "password")}
        unknown = sorted(set(extra) - set(defaults))
        if unknown:
            raise ValueError(
                f"connection {conn.conn_id!r}: unknown extra keys {unknown}; "
                f"expected some of {sorted(defaults)}"
            )
        values: dict[str, Any] = {}
        for name, raw in extra.items():
            default = defaults[name]
            if isinstance(default, bool):
                flag = {"true": True, "false": False}.get(str(raw).lower())
                values[name] = raw if isinstance(raw, bool) else str(raw) if flag is None else flag
            elif isinstance(default, int | float):
                values[name] = type(default)(raw)
            else:
                values[name] = None if raw is None else str(raw)
        return cls(base_url=base, login=conn.login or None, password=conn.password or None, **values)


class ODataClient:
    """A ``requests`` session with the service's address, auth, timeouts, CSRF token and retry rules.

    One client per thread: a CSRF token belongs to the session cookie it was issued with.

    Args:
        settings: where and how to connect.
        sleep: how to wait between attempts (tests pass a recorder).
    """

    def __init__(self, settings: SapSettings, *, sleep=time.sleep) -> None:
        import requests

        self.settings = settings
        self.session = requests.Session()
        if settings.login:
            self.session.auth = (settings.login, settings.password or "")
        self.session.headers.update({"Accept": "application/json"})
        self.session.verify = settings.verify
        self.token: str | None = None
        self.sleep = sleep
        self.calls: Counter = Counter()
        """Requests sent, by method and outcome: what the reliability figures count as attempts."""
        self._rng = random.Random()

    def close(self) -> None:
        self.session.close()

    def url(self, path_or_url: str) -> str:
        """An absolute URL on this service; a link from SAP (``__next``) must point at the same server."""
        url = urljoin(self.settings.service_url + "/", path_or_url)
        mine, theirs = urlsplit(self.settings.service_url), urlsplit(url)
        if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
            raise SapError(f"refusing to follow {url}: it is not on the configured server {mine.netloc}")
        return url

    def request(self, method: str, path_or_url: str, **kwargs) -> requests.Response:
        """Send one request, once. A dropped connection or timeout raises :class:`SapConnectionLost`."""
        import requests

        url = self.url(path_or_url)
        params = dict(kwargs.pop("params", None) or {})
        if self.settings.sap_client and "sap-client=" not in url:
            params["sap-client"] = self.settings.sap_client
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            response = self.session.request(method, url, params=params, timeout=timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as err:
            self.calls[(method, "lost")] += 1
            raise SapConnectionLost(f"{method} {url}: {type(err).__name__}: no answer from SAP") from err
        self.calls[(method, response.status_code)] += 1
        return response

    def fetch_token(self) -> str:
        """Fetch a CSRF token (a GET with ``X-CSRF-Token: Fetch`` on the service document)."""
        response = self.get_response(self.settings.service_url + "/", headers={"X-CSRF-Token": "Fetch"})
        token = response.headers.get("x-csrf-token")
        if not token or token.lower() == "required":
            raise SapError(
                f"SAP sent no CSRF token from {self.settings.service_url}/; is the user allowed to change?"
            )
        self.token = token
        logger.debug("Fetched a CSRF token from %s", self.settings.service_url)
        return token

    def note_token(self, response: requests.Response) -> None:
        """Keep a token SAP handed out on a read that asked for one."""
        token = response.headers.get("x-csrf-token")
        if token and token.lower() != "required":
            self.token = token

    def get_response(self, path_or_url: str, *, params=None, headers=None) -> requests.Response:
        """GET with retries on 429, 5xx and dropped connections; other errors raise at once."""
        last: SapError | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                response = self.request("GET", path_or_url, params=params, headers=headers)
            except SapConnectionLost as err:
                last = err
                self.wait(attempt)
                continue
            if response.ok:
                return response
            last = error_of(response)
            if not last.retryable:
                raise last
            self.wait(attempt, response)
        raise SapError(f"gave up after {self.settings.max_attempts} attempts: {last}") from last

    def get_json(self, path_or_url: str, *, params=None, headers=None) -> dict:
        response = self.get_response(path_or_url, params=params, headers=headers)
        try:
            return response.json()
        except ValueError as err:
            raise SapError(f"GET {response.url}: the body is not JSON ({err})") from err

    def wait(self, attempt: int, response: requests.Response | None = None) -> float:
        """Wait before attempt ``attempt + 1``: SAP's ``Retry-After`` if sent, else backoff with jitter."""
        delay = retry_after_seconds(response) if response is not None else None
        if delay is None:
            ceiling = min(
                self.settings.max_backoff_seconds, self.settings.backoff_seconds * 2 ** (attempt - 1)
            )
            delay = self._rng.uniform(ceiling / 2, ceiling)
        delay = min(delay, self.settings.max_backoff_seconds)
        if delay > 0:
            self.sleep(delay)
        return delay


def retry_after_seconds(response: requests.Response) -> float | None:
    """``Retry-After`` as seconds: either a number of seconds or an HTTP date; ``None`` when absent."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.replace(".", "", 1).isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        logger.warning("Ignoring a Retry-After header SAP sent that is neither seconds nor a date: %r", raw)
        return None
    return max(0.0, when.timestamp() - time.time())


def error_of(response: requests.Response) -> SapODataError:
    """The SAP error body (``{"error": {"code", "message": {"value"}}}``) as an exception."""
    code = message = None
    try:
        body = response.json().get("error", {})
        code = body.get("code")
        message = (body.get("message") or {}).get("value")
    except (ValueError, AttributeError):
        message = response.text[:200] or None
    return SapODataError(response.status_code, response.url, code, message)


def token_required(response: requests.Response) -> bool:
    """SAP's way of saying "fetch a new CSRF token": 403 with ``x-csrf-token: Required``."""
    return response.status_code == 403 and (response.headers.get("x-csrf-token") or "").lower() == "required"
