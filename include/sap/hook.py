"""Airflow hook reading sales orders from SAP S/4HANA's OData v2 service, incrementally.

The connection (default id ``holdcast_sap``, type ``http``) holds the server and the user; its extra
holds the rest (see :class:`include.sap.client.SapSettings`), for example::

    AIRFLOW_CONN_HOLDCAST_SAP='{"conn_type": "http", "host": "my-s4.example.com", "schema": "https",
        "login": "HOLDCAST_API", "password": "...",
        "extra": {"sap_client": "100", "page_size": 500, "read_timeout": 30}}'

Headers are read by ``LastChangeDateTime``: every order changed after the watermark (and, when
given, not after the interval's end). Pages are cut by the change time and the order number
(keyset paging), not by ``$skip`` alone: an order changed while the read runs moves to the end of the
result set, and with plain ``$skip`` the order behind it would slide under an offset already read
and be lost. Within one request the server may cut the page shorter and link the rest with
``__next``; the reader follows it. Items, schedule lines and partners carry no change time, so they
are read for the orders whose header changed (a change to an item moves the header's time too).

Records come back as SAP sent them: text, ``/Date(...)/`` values and decimal strings untouched,
``""`` and ``None`` kept apart. Turning them into canonical tables is the ingestion mapping's job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from include.sap.client import ODataClient, SapError, SapSettings
from include.sources.odata import ODATA_DATE

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

HEADERS = "A_SalesOrder"
ITEMS = "A_SalesOrderItem"
SCHEDULE_LINES = "A_SalesOrderScheduleLine"
PARTNERS = "A_SalesOrderHeaderPartner"
CHILD_SETS = (ITEMS, SCHEDULE_LINES, PARTNERS)
ORDERS_PER_FILTER = 25
"""Orders named in one ``$filter`` for child records; keeps the URL well under SAP's 8 KB limit."""


@dataclass
class SapExtract:
    """What one incremental read brought: raw records per entity set and the new watermark."""

    records: dict[str, list[dict]] = field(default_factory=dict)
    watermark: datetime | None = None
    """The latest ``LastChangeDateTime`` read, to pass as ``since`` next time (None: nothing read)."""

    def frames(self) -> dict[str, pd.DataFrame]:
        """One frame per entity set, every column text (object dtype) as SAP sent it, ``None`` kept."""
        import pandas as pd

        out = {}
        for name, records in self.records.items():
            rows = [{k: v for k, v in r.items() if k != "__metadata"} for r in records]
            out[name] = pd.DataFrame(rows, dtype=object)
        return out


def datetimeoffset_literal(moment: datetime) -> str:
    """A ``$filter`` literal for an aware datetime: ``datetimeoffset'2025-03-04T09:15:02.1230000Z'``."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; SAP change times are compared in UTC")
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"datetimeoffset'{text}0Z'"


def change_time(record: dict) -> datetime:
    """A header's ``LastChangeDateTime`` as an aware UTC datetime; a bad value fails naming the order."""
    raw = record.get("LastChangeDateTime") or ""
    match = ODATA_DATE.match(raw.strip())
    if match is None:
        raise SapError(
            f"A_SalesOrder {record.get('SalesOrder')!r}: LastChangeDateTime {raw!r} is not /Date(ms[+-MMMM])/"
        )
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)


class SapODataHook(BaseHook):
    """Reads ``API_SALES_ORDER_SRV`` through an Airflow connection.

    Args:
        sap_conn_id: the Airflow connection id of the SAP system.
    """

    conn_name_attr = "sap_conn_id"
    default_conn_name = "holdcast_sap"
    conn_type = "http"
    hook_name = "holdcast SAP S/4HANA (OData v2)"

    def __init__(self, sap_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.sap_conn_id = sap_conn_id
        self._settings: SapSettings | None = None

    def settings(self) -> SapSettings:
        if self._settings is None:
            self._settings = SapSettings.from_connection(self.get_connection(self.sap_conn_id))
        return self._settings

    def get_conn(self) -> ODataClient:
        """A new client (one per thread: the CSRF token belongs to its session)."""
        return ODataClient(self.settings())

    def read_sales_orders(self, since: datetime | None, until: datetime | None = None) -> SapExtract:
        """Headers changed after ``since`` (up to ``until``) with their items, schedule lines and partners."""
        client = self.get_conn()
        try:
            headers = self.read_changed_headers(client, since, until)
            extract = SapExtract(records={HEADERS: headers})
            orders = list(dict.fromkeys(r["SalesOrder"] for r in headers))
            for entity_set in CHILD_SETS:
                extract.records[entity_set] = self.read_for_orders(client, entity_set, orders)
        finally:
            client.close()
        extract.watermark = max((change_time(r) for r in headers), default=since)
        logger.info(
            "Read from SAP %s: %s; watermark %s",
            self.settings().service_url,
            {k: len(v) for k, v in extract.records.items()},
            extract.watermark,
        )
        return extract

    def read_changed_headers(
        self, client: ODataClient, since: datetime | None, until: datetime | None = None
    ) -> list[dict]:
        """Every header with ``since < LastChangeDateTime <= until``, each order once (its latest read)."""
        page_size = self.settings().page_size
        seen: dict[str, dict] = {}
        after: tuple[datetime, str] | None = None
        skip = 0
        while True:
            params = {
                "$orderby": "LastChangeDateTime asc,SalesOrder asc",
                "$top": str(page_size),
            }
            if condition := _header_filter(since, until, after):
                params["$filter"] = condition
            if skip:
                params["$skip"] = str(skip)
            page = self.read_pages(client, HEADERS, params)
            new = [r for r in page if r["SalesOrder"] not in seen or seen[r["SalesOrder"]] != r]
            for record in page:
                seen[record["SalesOrder"]] = record
            if len(page) < page_size:
                return sorted(seen.values(), key=lambda r: (change_time(r), r["SalesOrder"]))
            if new:
                last = page[-1]
                after, skip = (change_time(last), last["SalesOrder"]), 0
            else:
                # A full page of orders already read: the service keeps more precision than the JSON
                # shows (milliseconds), so the same instant matched again; step over it by offset.
                skip += page_size

    def read_for_orders(self, client: ODataClient, entity_set: str, orders: list[str]) -> list[dict]:
        """All records of ``entity_set`` belonging to ``orders``, a few orders per request."""
        out: list[dict] = []
        for start in range(0, len(orders), ORDERS_PER_FILTER):
            chunk = orders[start : start + ORDERS_PER_FILTER]
            condition = " or ".join(f"SalesOrder eq '{_quote(o)}'" for o in chunk)
            out.extend(self.read_pages(client, entity_set, {"$filter": condition}))
        return out

    def read_pages(self, client: ODataClient, entity_set: str, params: dict) -> list[dict]:
        """One query, following ``__next`` links until the server sends none."""
        body = client.get_json(entity_set, params=params)
        records = list(_results(body, entity_set))
        pages = 1
        while next_link := body.get("d", {}).get("__next"):
            body = client.get_json(next_link)
            records.extend(_results(body, entity_set))
            pages += 1
        logger.debug("Read %s records of %s in %s pages", len(records), entity_set, pages)
        return records


def _quote(value: str) -> str:
    return value.replace("'", "''")


def _header_filter(since, until, after) -> str | None:
    parts = []
    if after is not None:
        at, order = after
        stamp = datetimeoffset_literal(at)
        same_time_later_key = f"(LastChangeDateTime eq {stamp} and SalesOrder gt '{_quote(order)}')"
        parts.append(f"(LastChangeDateTime gt {stamp} or {same_time_later_key})")
    elif since is not None:
        parts.append(f"LastChangeDateTime gt {datetimeoffset_literal(since)}")
    if until is not None:
        parts.append(f"LastChangeDateTime le {datetimeoffset_literal(until)}")
    return " and ".join(parts) or None


def _results(body: dict, entity_set: str) -> list[dict]:
    try:
        results = body["d"]["results"]
    except (KeyError, TypeError) as err:
        raise SapError(
            f"{entity_set}: expected an OData v2 collection {{'d': {{'results': [...]}}}}"
        ) from err
    if not isinstance(results, list):
        raise SapError(f"{entity_set}: 'd.results' is {type(results).__name__}, expected a list")
    return results
