"""A local stand-in for SAP S/4HANA's sales-order OData v2 service (``API_SALES_ORDER_SRV``).

This is a test double: a small HTTP server on 127.0.0.1 (an ephemeral port) that answers the way the
published service does, so the SAP hook and write-back can be tested for real, over sockets, with no
SAP system. What it follows from the published service:

- entity sets ``A_SalesOrder``, ``A_SalesOrderItem``, ``A_SalesOrderScheduleLine`` and
  ``A_SalesOrderHeaderPartner``, their keys, and for the header the field lengths and which fields
  may be changed (``sap:updatable``);
- v2 JSON: ``{"d": {"results": [...], "__next": ...}}`` for collections, ``{"d": {...}}`` for one
  entity, ``/Date(ms)/`` and ``/Date(ms+0000)/`` values, decimals as strings, keys padded with zeros
  to their length (``'4711'`` in a URL is read as ``'0000004711'``, as SAP's ALPHA conversion does),
  ``__metadata`` with ``id``, ``uri``, ``type`` and, on headers, ``etag``;
- ``$filter`` with ``eq ne gt ge lt le``, ``and``, ``or`` and parentheses, on text and on
  ``datetimeoffset'...'`` / ``datetime'...'`` literals; ``$orderby``, ``$top``, ``$skip``,
  ``$select``, ``$inlinecount=allpages``; server-driven paging with ``__next`` and ``$skiptoken``;
- the CSRF handshake: a GET with ``X-CSRF-Token: Fetch`` returns a token bound to the session
  cookie; a change without a valid token gets 403 with ``x-csrf-token: Required``;
- optimistic locking: the header's ETag is derived from ``LastChangeDateTime`` (the property SAP
  marks ``ConcurrencyMode="Fixed"``); ``PATCH``/``MERGE`` needs ``If-Match`` (428 without it, 412
  when stale) and moves ``LastChangeDateTime`` on;
- error bodies shaped ``{"error": {"code": ..., "message": {"lang": "en", "value": ...}}}``.

Faults are injected per request, either queued one by one (``server.faults.queue("429")``) or at
random with a seeded rate (``server.faults.rate = 0.2``): ``500``, ``503``, ``429`` (with
``Retry-After``), ``token_expiry`` (every issued CSRF token becomes invalid), ``slow`` (the request
waits ``slow_seconds`` before it is handled), ``drop_before`` (the connection is closed before the
request is handled) and ``drop_after`` (a change is applied, then the connection is closed with no
response: the lost-response case).

What it does not cover: ``$metadata`` documents, ``$expand``, ``$batch``, deep inserts, creating or
deleting entities, ``$filter`` functions (``substringof``, ``startswith``) and arithmetic, item and
partner updates, authorisation beyond one basic-auth user, XML (Atom) responses, SAP's message
header ``sap-message``, and any business logic of the real service (pricing, credit checks,
determination of blocks). Timestamps are kept to the millisecond, as the JSON format shows them.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

SERVICE_PATH = "/sap/opu/odata/sap/API_SALES_ORDER_SRV"
FAULT_KINDS = ("500", "503", "429", "token_expiry", "slow", "drop_before", "drop_after")


@dataclass(frozen=True)
class EntitySet:
    """What the double knows of one entity set: its keys with their lengths, and its updatable fields."""

    name: str
    type_name: str
    keys: tuple[tuple[str, int], ...]
    updatable: dict[str, int] = field(default_factory=dict)
    has_etag: bool = False


# Lengths and updatability as the service's metadata declares them (a subset: the fields holdcast uses).
HEADER_UPDATABLE = {
    "PurchaseOrderByCustomer": 35,
    "CustomerPaymentTerms": 4,
    "DeliveryBlockReason": 2,
    "HeaderBillingBlockReason": 2,
    "SalesOrderType": 4,
    "SoldToParty": 10,
    "TransactionCurrency": 5,
}
ENTITY_SETS = {
    s.name: s
    for s in (
        EntitySet(
            "A_SalesOrder",
            "A_SalesOrderType",
            (("SalesOrder", 10),),
            HEADER_UPDATABLE,
            has_etag=True,
        ),
        EntitySet("A_SalesOrderItem", "A_SalesOrderItemType", (("SalesOrder", 10), ("SalesOrderItem", 6))),
        EntitySet(
            "A_SalesOrderScheduleLine",
            "A_SalesOrderScheduleLineType",
            (("SalesOrder", 10), ("SalesOrderItem", 6), ("ScheduleLine", 4)),
        ),
        EntitySet(
            "A_SalesOrderHeaderPartner",
            "A_SalesOrderHeaderPartnerType",
            (("SalesOrder", 10), ("PartnerFunction", 2)),
        ),
    )
}

_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def pad_key(value: str, length: int) -> str:
    """SAP's ALPHA conversion: an all-digit key is padded with zeros to its length, others kept."""
    return value.zfill(length) if value.isdigit() else value


def odata_date(moment: datetime, *, offset: bool = False) -> str:
    """``/Date(ms)/`` (``Edm.DateTime``) or ``/Date(ms+0000)/`` (``Edm.DateTimeOffset``) for a UTC instant."""
    millis = int(round(moment.timestamp() * 1000))
    return f"/Date({millis}+0000)/" if offset else f"/Date({millis})/"


def _millis(value: str) -> int:
    match = _DATE.match(value)
    if match is None:
        raise ValueError(value)
    return int(match.group(1))


def _etag(record: dict) -> str:
    stamp = datetime.fromtimestamp(_millis(record["LastChangeDateTime"]) / 1000, tz=UTC)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "0000Z"
    return "W/\"datetimeoffset'" + quote(text, safe="-.TZ") + "'\""


# ---------------------------------------------------------------------------------------------- $filter


class FilterError(ValueError):
    """A ``$filter`` the double does not understand (the real service answers 400 too)."""


_TOKEN = re.compile(
    r"\s*(?:(?P<open>\()|(?P<close>\))|(?P<lit>(?:datetimeoffset|datetime)?'(?:[^']|'')*')"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>-?\d+(?:\.\d+)?))"
)
_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "ge": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "le": lambda a, b: a is not None and a <= b,
}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FilterError(f"cannot read $filter at position {pos}: {text[pos : pos + 20]!r}")
        out.append((match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
    return out


def _literal(token: str):
    if token.startswith(("datetimeoffset'", "datetime'")):
        raw = token.split("'", 1)[1][:-1]
        stamp = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return ("date", stamp.astimezone(UTC))
    if token.startswith("'"):
        return ("text", token[1:-1].replace("''", "'"))
    return ("number", float(token))


def parse_filter(text: str):
    """Turn a ``$filter`` into a predicate on a record (``and`` binds tighter than ``or``)."""
    tokens = _tokens(text)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else (None, None)

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr():
        left = term()
        while peek() == ("word", "or"):
            take()
            right = term()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def term():
        left = factor()
        while peek() == ("word", "and"):
            take()
            right = factor()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def factor():
        kind, value = take() if pos < len(tokens) else (None, None)
        if kind == "open":
            inner = expr()
            if take()[0] != "close":
                raise FilterError("unbalanced parentheses in $filter")
            return inner
        if kind != "word":
            raise FilterError(f"expected a property name in $filter, found {value!r}")
        op_kind, op = take() if pos < len(tokens) else (None, None)
        if op_kind != "word" or op not in _OPS:
            raise FilterError(f"unsupported operator {op!r} in $filter")
        lit_kind, lit = take() if pos < len(tokens) else (None, None)
        if lit_kind not in ("lit", "num"):
            raise FilterError(f"expected a literal after {value} {op}")
        return _comparison(value, _OPS[op], _literal(lit))

    predicate = expr()
    if pos != len(tokens):
        raise FilterError(f"unexpected {tokens[pos][1]!r} in $filter")
    return predicate


def _comparison(name, op, literal):
    kind, wanted = literal

    def check(record):
        if name not in record:
            raise FilterError(f"property {name} does not exist")
        raw = record[name]
        if raw is None:
            return op(None, wanted) if op is _OPS["eq"] or op is _OPS["ne"] else False
        if kind == "date":
            return op(datetime.fromtimestamp(_millis(raw) / 1000, tz=UTC), wanted)
        if kind == "number":
            return op(float(raw), wanted)
        return op(raw, wanted)

    return check


# ---------------------------------------------------------------------------------------------- faults


@dataclass
class Faults:
    """Which faults the next requests get: a queue first, then a seeded random draw at ``rate``."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    retry_after: int = 1
    slow_seconds: float = 0.5
    methods: frozenset[str] = frozenset({"GET", "PATCH", "MERGE", "POST"})
    _queued: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    _rng: random.Random | None = None
    injected: Counter = field(default_factory=Counter)

    def queue(self, kind: str, count: int = 1, methods: tuple[str, ...] = ("GET", "PATCH", "MERGE")):
        """The next ``count`` requests whose method is in ``methods`` get fault ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
        self._queued.extend([(kind, frozenset(methods))] * count)

    def draw(self, method: str, is_fetch: bool) -> str | None:
        for i, (kind, methods) in enumerate(self._queued):
            if method in methods:
                del self._queued[i]
                self.injected[kind] += 1
                return kind
        if self.rate <= 0 or method not in self.methods or is_fetch:
            return None
        if self._rng is None:
            self._rng = random.Random(self.seed)
        if self._rng.random() >= self.rate:
            return None
        kind = self._rng.choice(self.kinds)
        self.injected[kind] += 1
        return kind


# ---------------------------------------------------------------------------------------------- server


class SapTestServer:
    """The double: holds entity sets in memory and serves them over HTTP on 127.0.0.1.

    Args:
        page_size: the most records one response carries; more are left to ``__next``.
        custom_fields: extension fields added to the header (name -> length), as a key user would
            add them with the "Custom Fields" app; they start empty (``""``).
        user, password: the one basic-auth user accepted.
    """

    def __init__(
        self,
        *,
        page_size: int = 100,
        custom_fields: dict[str, int] | None = None,
        user: str = "HOLDCAST",
        password: str = "test-only",
    ) -> None:
        self.page_size = page_size
        self.custom_fields = dict(custom_fields or {})
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.data: dict[str, dict[tuple, dict]] = {name: {} for name in ENTITY_SETS}
        self.faults = Faults()
        self.lock = threading.RLock()
        self.tokens: dict[str, str] = {}
        self.requests: Counter = Counter()
        self.applied: Counter = Counter()
        """How many times each (order, field, value) change was applied: > 1 is a double delivery."""
        self.sap_clients: set[str] = set()
        self._clock = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def __enter__(self) -> SapTestServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            double = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sap-double", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        return self.base_url + SERVICE_PATH

    # -- data

    def add(self, entity_set: str, record: dict) -> dict:
        """Store one record as SAP would send it; keys are padded, ``__metadata`` is added on output."""
        spec = ENTITY_SETS[entity_set]
        rec = dict(record)
        for key, length in spec.keys:
            rec[key] = pad_key(str(rec[key]), length)
        if entity_set == "A_SalesOrder":
            for name in self.custom_fields:
                rec.setdefault(name, "")
        with self.lock:
            self.data[entity_set][tuple(rec[k] for k, _ in spec.keys)] = rec
        return rec

    def order(self, sales_order: str) -> dict:
        with self.lock:
            return dict(self.data["A_SalesOrder"][(pad_key(sales_order, 10),)])

    def touch(self, sales_order: str, **changes) -> dict:
        """Change an order as a user in SAP would: the change time moves on, so the ETag changes."""
        with self.lock:
            rec = self.data["A_SalesOrder"][(pad_key(sales_order, 10),)]
            rec.update(changes)
            rec["LastChangeDateTime"] = self._next_change_time(rec["LastChangeDateTime"])
            return dict(rec)

    def _next_change_time(self, previous: str) -> str:
        now = int(time.time() * 1000)
        return f"/Date({max(now, _millis(previous) + 1)}+0000)/"

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that gave up (timeout) leaves a broken pipe: expected here, not worth a traceback."""


class _Handler(BaseHTTPRequestHandler):
    double: SapTestServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm delays each answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        """Quiet: the tests read counters, not an access log."""

    # -- plumbing

    def _send(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        body = {"error": {"code": code, "message": {"lang": "en", "value": message}}}
        self._send(status, body, headers)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- dispatch

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_MERGE(self) -> None:
        self._dispatch("MERGE")

    def do_POST(self) -> None:
        tunnelled = (self.headers.get("X-HTTP-Method") or "").upper()
        self._dispatch(tunnelled if tunnelled in ("MERGE", "PATCH") else "POST")

    def _dispatch(self, method: str) -> None:
        double = self.double
        body = self._body()
        double.requests[method] += 1
        is_fetch = (self.headers.get("X-CSRF-Token") or "").lower() == "fetch" and method == "GET"
        with double.lock:
            fault = double.faults.draw(method, is_fetch)
        if fault == "drop_before":
            return self._drop()
        if fault == "slow":
            time.sleep(double.faults.slow_seconds)
        if fault in ("500", "503"):
            text = "Internal server error" if fault == "500" else "Service temporarily unavailable"
            return self._error(int(fault), "/IWFND/CM_BEC/026", text)
        if fault == "429":
            return self._error(
                429,
                "/IWFND/CM_CONSUMER/429",
                "Too many requests; retry later",
                {"Retry-After": str(double.faults.retry_after)},
            )
        if fault == "token_expiry":
            double.expire_tokens()
        if self.headers.get("Authorization") != double._auth:
            return self._error(401, "/IWFND/CM_CONSUMER/401", "Logon failed", {"WWW-Authenticate": "Basic"})

        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if "sap-client" in query:
            double.sap_clients.add(query["sap-client"])
        if not url.path.startswith(SERVICE_PATH + "/"):
            return self._error(404, "/IWFND/MED/170", f"No service found for namespace, name {url.path}")
        resource = unquote(url.path[len(SERVICE_PATH) + 1 :])
        headers = self._issue_token() if is_fetch else {}
        if resource == "" and method == "GET":
            return self._send(200, {"d": {"EntitySets": sorted(ENTITY_SETS)}}, headers)
        match = re.fullmatch(r"([A-Za-z_]+)(?:\((.*)\))?", resource)
        if match is None or match.group(1) not in ENTITY_SETS:
            return self._error(404, "/IWFND/MED/170", f"Resource not found for segment '{resource}'")
        spec = ENTITY_SETS[match.group(1)]
        if method == "GET":
            if match.group(2) is None:
                return self._collection(spec, query, headers)
            return self._entity(spec, match.group(2), query, headers)
        if method in ("PATCH", "MERGE") and match.group(2) is not None:
            return self._update(spec, match.group(2), body, drop_after=fault == "drop_after")
        return self._error(405, "/IWFND/CM_MGW/004", f"Method {method} not allowed on {resource}")

    # -- CSRF

    def _session(self) -> str | None:
        cookie = self.headers.get("Cookie") or ""
        found = re.search(r"SAP_SESSIONID_HC1_100=([^;]+)", cookie)
        return found.group(1) if found else None

    def _issue_token(self) -> dict:
        session = self._session() or secrets.token_hex(8)
        with self.double.lock:
            token = next((t for t, s in self.double.tokens.items() if s == session), None)
            if token is None:
                token = secrets.token_urlsafe(18)
                self.double.tokens[token] = session
        return {"x-csrf-token": token, "Set-Cookie": f"SAP_SESSIONID_HC1_100={session}; path=/; HttpOnly"}

    def _token_ok(self) -> bool:
        token = self.headers.get("X-CSRF-Token") or ""
        with self.double.lock:
            return self.double.tokens.get(token) == self._session() is not None

    # -- reads

    def _key(self, spec: EntitySet, text: str) -> tuple | None:
        if len(spec.keys) == 1 and "=" not in text:
            parts = {spec.keys[0][0]: text}
        else:
            parts = dict(p.split("=", 1) for p in text.split(","))
        try:
            return tuple(pad_key(parts[name].strip("'"), length) for name, length in spec.keys)
        except KeyError:
            return None

    def _shape(self, spec: EntitySet, rec: dict, select: list[str] | None) -> dict:
        keys = ",".join(f"{k}='{rec[k]}'" for k, _ in spec.keys)
        keys = keys.split("=", 1)[1] if len(spec.keys) == 1 else keys
        uri = f"{self.double.service_url}/{spec.name}({keys})"
        meta = {"id": uri, "uri": uri, "type": f"API_SALES_ORDER_SRV.{spec.type_name}"}
        if spec.has_etag:
            meta["etag"] = _etag(rec)
        values = {k: v for k, v in rec.items() if select is None or k in select}
        return {"__metadata": meta, **values}

    def _collection(self, spec: EntitySet, query: dict, headers: dict) -> None:
        double = self.double
        try:
            predicate = parse_filter(query["$filter"]) if query.get("$filter") else None
            with double.lock:
                rows = [r for r in double.data[spec.name].values() if predicate is None or predicate(r)]
        except FilterError as err:
            return self._error(400, "/IWBEP/CM_MGW_RT/022", f"Invalid filter expression: {err}", headers)
        order = [k for k, _ in spec.keys]
        if query.get("$orderby"):
            order = [p.split()[0] for p in query["$orderby"].split(",")] + order
        rows.sort(key=lambda r: tuple(_sort_value(r.get(k)) for k in order))
        skip = int(query.get("$skip") or 0)
        top = int(query["$top"]) if query.get("$top") else None
        offset = int(query.get("$skiptoken") or 0)
        window = rows[skip:] if top is None else rows[skip : skip + top]
        page = window[offset : offset + double.page_size]
        select = query["$select"].split(",") if query.get("$select") else None
        result: dict = {"results": [self._shape(spec, r, select) for r in page]}
        if query.get("$inlinecount") == "allpages":
            result["__count"] = str(len(rows))
        if offset + double.page_size < len(window):
            following = {k: v for k, v in query.items() if k != "$skiptoken"}
            following["$skiptoken"] = str(offset + double.page_size)
            link = "&".join(f"{k}={quote(v, safe=',')}" for k, v in following.items())
            result["__next"] = f"{double.service_url}/{spec.name}?{link}"
        self._send(200, {"d": result}, headers)

    def _entity(self, spec: EntitySet, key_text: str, query: dict, headers: dict) -> None:
        key = self._key(spec, key_text)
        with self.double.lock:
            rec = self.double.data[spec.name].get(key) if key else None
            rec = dict(rec) if rec else None
        if rec is None:
            return self._error(404, "SALES_ORDER/001", f"Resource {spec.name}({key_text}) not found", headers)
        if spec.has_etag:
            headers = {**headers, "ETag": _etag(rec)}
        select = query["$select"].split(",") if query.get("$select") else None
        self._send(200, {"d": self._shape(spec, rec, select)}, headers)

    # -- changes

    def _update(self, spec: EntitySet, key_text: str, body: bytes, *, drop_after: bool) -> None:
        double = self.double
        if not self._token_ok():
            return self._error(
                403, "/IWFND/CM_CONSUMER/403", "CSRF token validation failed", {"x-csrf-token": "Required"}
            )
        try:
            changes = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "/IWBEP/CM_MGW_RT/004", "Malformed request body: not JSON")
        changes = changes.get("d", changes) if isinstance(changes, dict) else None
        if not isinstance(changes, dict):
            return self._error(400, "/IWBEP/CM_MGW_RT/004", "Request body must be a JSON object")
        allowed = {**spec.updatable, **(double.custom_fields if spec.has_etag else {})}
        for name, value in changes.items():
            if name == "__metadata":
                continue
            if name not in allowed:
                return self._error(400, "/IWBEP/CM_MGW_RT/021", f"Property {name} is not updatable")
            if not isinstance(value, str) or len(value) > allowed[name]:
                return self._error(
                    400, "/IWBEP/CM_MGW_RT/020", f"Value of {name} exceeds length {allowed[name]}"
                )
        key = self._key(spec, key_text)
        with double.lock:
            rec = double.data[spec.name].get(key) if key else None
            if rec is None:
                return self._error(404, "SALES_ORDER/001", f"Resource {spec.name}({key_text}) not found")
            if_match = self.headers.get("If-Match")
            if spec.has_etag and not if_match:
                return self._error(428, "/IWBEP/CM_MGW_RT/025", "Precondition required: send If-Match")
            if spec.has_etag and if_match != "*" and if_match != _etag(rec):
                return self._error(
                    412, "/IWBEP/CM_MGW_RT/026", "The data has been changed in the meantime (ETag mismatch)"
                )
            for name, value in changes.items():
                if name != "__metadata":
                    rec[name] = value
                    double.applied[(rec["SalesOrder"], name, value)] += 1
            if spec.has_etag:
                rec["LastChangeDateTime"] = double._next_change_time(rec["LastChangeDateTime"])
            etag = _etag(rec) if spec.has_etag else None
        if drop_after:
            return self._drop()
        self._send(204, None, {"ETag": etag} if etag else None)


def _sort_value(value):
    if isinstance(value, str) and value.startswith("/Date("):
        return (1, _millis(value))
    return (0, value or "")


# ---------------------------------------------------------------------------------------------- data


def seed_orders(
    server: SapTestServer,
    count: int,
    *,
    start: datetime,
    step: timedelta = timedelta(minutes=7),
    seed: int = 0,
) -> list[str]:
    """Fill ``server`` with ``count`` orders shaped like SAP's: items, schedule lines, partners, blocks.

    Every fifth order is credit-blocked (``TotalCreditCheckStatus`` "B"), every seventh released by a
    credit representative ("D"), every eleventh has delivery block "01", every thirteenth a billing
    block on its first item, every seventeenth a block on a schedule line. Returns the order numbers.
    """
    rng = random.Random(seed)
    numbers = []
    for i in range(count):
        number = f"{4711 + i:010d}"
        created = start + step * i
        changed = created + timedelta(hours=1 + i % 5, milliseconds=i % 1000)
        credit = "B" if i % 5 == 0 else "D" if i % 7 == 0 else "A" if i % 2 else ""
        server.add(
            "A_SalesOrder",
            {
                "SalesOrder": number,
                "SalesOrderType": "OR",
                "SalesOrganization": "1010",
                "SoldToParty": f"{17100001 + i % 40:010d}",
                "SalesOrderDate": odata_date(created.replace(hour=0, minute=0, second=0, microsecond=0)),
                "CreationDate": odata_date(created.replace(hour=0, minute=0, second=0, microsecond=0)),
                "LastChangeDateTime": odata_date(changed, offset=True),
                "TotalNetAmount": f"{rng.randint(-50, 50_000) + rng.randint(0, 999) / 1000:.3f}",
                "TransactionCurrency": "EUR" if i % 3 else "USD",
                "CustomerPaymentTerms": "0004",
                "PurchaseOrderByCustomer": "" if i % 4 == 0 else f"PO-{80000 + i}",
                "TotalCreditCheckStatus": credit,
                "DeliveryBlockReason": "01" if i % 11 == 0 else "",
                "HeaderBillingBlockReason": "",
                "OverallSDProcessStatus": "A",
                "OverallSDDocumentRejectionSts": "A" if i % 9 else "",
            },
        )
        for item in range(1, 1 + 1 + i % 3):
            item_no = f"{item * 10:06d}"
            server.add(
                "A_SalesOrderItem",
                {
                    "SalesOrder": number,
                    "SalesOrderItem": item_no,
                    "Material": f"TG{10 + (i + item) % 30}",
                    "RequestedQuantity": f"{1 + (i * item) % 40}.000",
                    "RequestedQuantityUnit": "PC",
                    "NetAmount": f"{rng.randint(1, 9_000)}.500",
                    "TransactionCurrency": "EUR",
                    "ItemBillingBlockReason": "02" if i % 13 == 0 and item == 1 else "",
                    "SDProcessStatus": "A",
                },
            )
            server.add(
                "A_SalesOrderScheduleLine",
                {
                    "SalesOrder": number,
                    "SalesOrderItem": item_no,
                    "ScheduleLine": "1",
                    "RequestedDeliveryDate": odata_date(created + timedelta(days=7)),
                    "ConfirmedDeliveryDate": odata_date(created + timedelta(days=9)),
                    "ScheduleLineOrderQuantity": f"{1 + (i * item) % 40}.000",
                    "DelivBlockReasonForSchedLine": "03" if i % 17 == 0 and item == 1 else "",
                },
            )
        for function, party in (("SP", f"{17100001 + i % 40:010d}"), ("SH", f"{17200001 + i % 40:010d}")):
            server.add(
                "A_SalesOrderHeaderPartner",
                {"SalesOrder": number, "PartnerFunction": function, "Customer": party, "Supplier": ""},
            )
        numbers.append(number)
    return numbers
