"""Writes tests/corpus/cases.json: the bad-input corpus (run: python -m tests.corpus.generate).

Each case is one hostile or malformed request and the answer it must get: an HTTP status
and, where the endpoint has one, the typed error code. The cases are data, so a new one is
a line here; ``tests/test_security_corpus.py`` replays them all against a live server.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
OK_QUERY = "{ stores { name } }"

Case = dict[str, Any]
cases: list[Case] = []


def gql(
    case_id: str, query: Any, status: int | list[int], code: str | None = None, **kw: Any
) -> None:
    body: dict[str, Any] = {"query": query}
    body.update(kw.pop("extra", {}))
    cases.append(
        {
            "id": case_id,
            "kind": "http",
            "method": "POST",
            "path": "/graphql",
            "json": body,
            "expect": {"status": status, "code": code},
            **kw,
        }
    )


def raw(case_id: str, data: bytes | str, status: int, code: str | None, **kw: Any) -> None:
    payload = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    cases.append(
        {
            "id": case_id,
            "kind": "http",
            "method": kw.pop("method", "POST"),
            "path": kw.pop("path", "/graphql"),
            "b64": base64.b64encode(payload).decode(),
            "content_type": kw.pop("content_type", "application/json"),
            "expect": {"status": status, "code": code},
            **kw,
        }
    )


def big(
    case_id: str,
    prefix: str,
    unit: str,
    times: int,
    suffix: str,
    status: int,
    code: str | None,
    **kw: Any,
) -> None:
    """A large body described, not stored: ``prefix + unit * times + suffix``."""
    cases.append(
        {
            "id": case_id,
            "kind": "http",
            "method": "POST",
            "path": kw.pop("path", "/graphql"),
            "repeat": {"prefix": prefix, "unit": unit, "times": times, "suffix": suffix},
            "content_type": kw.pop("content_type", "application/json"),
            "expect": {"status": status, "code": code},
            **kw,
        }
    )


def get(
    case_id: str, params: list[tuple[str, str]], status: int, code: str | None, **kw: Any
) -> None:
    cases.append(
        {
            "id": case_id,
            "kind": "http",
            "method": "GET",
            "path": "/graphql",
            "params": params,
            "expect": {"status": status, "code": code},
            **kw,
        }
    )


# --- documents that do not parse -------------------------------------------------------------
PARSE = "GRAPHQL_PARSE_FAILED"
for i, doc in enumerate(
    [
        "",
        " ",
        "\n\t\r",
        "{",
        "}",
        "{{",
        "}}",
        "{ stores { name }",
        "{ stores { name } } }",
        "query",
        "query {",
        "mutation",
        "subscription",
        "fragment",
        "fragment F",
        "...",
        "{ ... }",
        '"unterminated',
        '{ customer(id: "abc) { id } }',
        '"""never closed',
        "{ stores(: 1) { name } }",
        "{ 1 }",
        "{ stores { name } } trailing garbage",
        "\u0000",
        "{ stores\u0000 { name } }",
        "query Q($a: ) { stores { name } }",
        "{ stores @ { name } }",
        "{ stores { ...on } }",
        "#only a comment",
        "{ störes { name } }",
        "{ stores { name } } \U0001f600",
        "query Q($a: Int = ) { stores { name } }",
        "{ customer(id: ) { id } }",
        "{ a: }",
        "{ stores { name } ",
        "query Q { stores { name } } query",
        "{ stores { name } }}" * 3,
        "[",
        '{ "stores" }',
        "{ stores { name } } }" * 50,
        "{ customer(id: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ ) { id } }",
        "{ customers(first: 1.2.3) { totalCount } }",
        "{ customers(first: 0x10) { totalCount } }",
        "query ($) { stores { name } }",
        "{ stores @skip(if: ) { name } }",
    ]
):
    gql(f"parse-{i:02d}", doc, 400, PARSE)

# --- documents that parse but are not valid against the schema ---------------------------------
INVALID = "GRAPHQL_VALIDATION_FAILED"
for i, doc in enumerate(
    [
        "{ nope }",
        "{ stores { nope } }",
        "{ stores }",
        "{ stores { name { x } } }",
        "{ stores(x: 1) { name } }",
        "{ customer { id } }",
        '{ customers(first: "a") { totalCount } }',
        "query($a: Nope) { stores { name } }",
        "query($a: Int) { stores { name } }",
        "{ customers(first: $n) { totalCount } }",
        "{ ...F } fragment F on Nope { id }",
        "{ stores { name } } fragment F on Store { name }",
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...C } fragment C on Query { ...A }",
        "{ ...A } fragment A on Query { ...A }",
        "query Q { stores { name } } query Q { stores { id } }",
        "{ stores { name } } { stores { id } }",
        "{ stores { name } } query { stores { id } }",
        "query($a: Int, $a: Int) { customers(first: $a) { totalCount } }",
        "{ customers(first: 1, first: 2) { totalCount } }",
        "{ stores @foo { name } }",
        "{ stores @skip { name } }",
        '{ stores @include(if: "yes") { name } }',
        "{ stores { ... on Customer { email } } }",
        "mutation { nope }",
        "subscription { nope }",
        '{ customer(id: "x") { orders(first: "many") { totalCount } } }',
        "{ orders(filter: {status: [NOPE]}) { totalCount } }",
        "{ orders(filter: {nope: 1}) { totalCount } }",
        "{ stores { name } __nope }",
        "query($id: ID!) { customer(id: $id) { id } } query B { stores { name } }",
        "{ customers(first: 99999999999999) { totalCount } }",
        '{ customer(id: "x") { email(x: 1) } }',
        "{ node { id } }",
        "{ node(id: 1) { nope } }",
    ]
):
    gql(f"invalid-{i:02d}", doc, 400, INVALID)

# --- limits ---------------------------------------------------------------------------------------


def deep(levels: int) -> str:
    """customer → orders → edges → node → customer ... until ``levels`` field levels."""
    parts: list[str] = []
    cycle = ["orders(first: 1)", "edges", "node", "customer"]
    for i in range(levels - 2):
        parts.append(cycle[i % 4])
    inner = "id"
    doc = inner
    for name in reversed(parts):
        doc = f"{name} {{ {doc} }}"
    return f'{{ customer(id: "Q3VzdG9tZXI6MQ==") {{ {doc} }} }}'


for levels in range(9, 41):
    gql(f"depth-{levels:02d}", deep(levels), 400, "DEPTH_LIMIT")
gql("depth-1000", deep(1000), 400, "DEPTH_LIMIT")
gql("nesting-1000-open-braces", "{" * 1000, 400, "DEPTH_LIMIT")
gql("nesting-500-parens", "(" * 500, 400, "DEPTH_LIMIT")
gql("nesting-65-lists", "{ customer(id: " + "[" * 65 + "]" * 65 + ") { id } }", 400, "DEPTH_LIMIT")
gql("nesting-1000-braces", "{ a " * 1000 + "}" * 1000, 400, "DEPTH_LIMIT")
for n in (16, 20, 50, 101, 500):
    gql(
        f"aliases-{n}",
        "{ " + " ".join(f"a{i}: __typename" for i in range(n)) + " }",
        400,
        "TOO_MANY_ALIASES",
    )
gql(
    "aliases-in-fragment",
    "{ ...F } fragment F on Query { " + " ".join(f"a{i}: __typename" for i in range(40)) + " }",
    400,
    "TOO_MANY_ALIASES",
)
for n in (2100, 5000, 50000):
    big(f"tokens-{n}", '{"query": "{ ', "__typename ", n, '}"}', 400, "TOO_MANY_TOKENS")
for n in (11, 50, 500):
    gql(f"duplicate-fields-{n}", "{ " + "__typename " * n + "}", 400, "FIELD_DUPLICATION")
for n in (4, 10, 50):
    gql(f"directives-{n}", "{ __typename " + "@aa " * n + "}", 400, "TOO_MANY_DIRECTIVES")
    gql(
        f"directives-skip-{n}",
        "{ stores " + "@skip(if: false) " * n + "{ name } }",
        400,
        "TOO_MANY_DIRECTIVES",
    )
for i, doc in enumerate(
    [
        "{ __schema { queryType { name } } }",
        '{ __type(name: "Customer") { fields { name } } }',
        "{ __schema { types { name fields { name } } } }",
        "{ ...F } fragment F on Query { __schema { types { name } } }",
        "query IntrospectionQuery { __schema { directives { name } } }",
        "{ a: __schema { queryType { name } } }",
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
        '{ __type(name: "Query") { name } }',
    ]
):
    gql(f"introspection-{i}", doc, 400, "INTROSPECTION_DISABLED")
for i, doc in enumerate(
    [
        "{ customers(first: 100000) { edges { node { id } } } }",
        "{ orders(first: 1000000000) { edges { node { id } } } }",
        "{ customers(first: 100) { edges { node { orders(first: 100) { edges { node { id } } } } } } }",
        "{ customers(first: 50) { edges { node { orders(first: 50) { edges { node { lineItems { name } } } } } } } }",
        "{ stores { name } customers(first: 30000) { totalCount } }",
    ]
):
    gql(f"cost-{i}", doc, 400, "COST_LIMIT")
gql(
    "cost-by-variable",
    "query($n: Int) { customers(first: $n) { edges { node { id } } } }",
    400,
    "COST_LIMIT",
    extra={"variables": {"n": 10**9}},
)
fanout = (
    "{ ...F0 } "
    + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(14))
    + " fragment F14 on Query { stores { name } }"
)
gql("fragment-fanout", fanout, 400, "COST_LIMIT")

# --- operations -------------------------------------------------------------------------------
gql(
    "operation-unknown-name",
    "query A { stores { name } }",
    400,
    "OPERATION_NOT_FOUND",
    extra={"operationName": "B"},
)
gql(
    "operation-name-required",
    "query A { stores { name } } query B { stores { id } }",
    400,
    "OPERATION_NOT_FOUND",
)
gql(
    "operation-name-injection",
    "query A { stores { name } }",
    400,
    "OPERATION_NOT_FOUND",
    extra={"operationName": "A' OR 1=1 --"},
)
gql("operation-subscription-over-http", "subscription { __typename }", 400, None)

# --- variables --------------------------------------------------------------------------------
BAD_VAR = "BAD_USER_INPUT"
FIRST = "query($n: Int) { customers(first: $n) { totalCount } }"
for i, value in enumerate(
    [
        "a",
        1.5,
        True,
        [],
        {},
        2**31,
        -(2**31) - 1,
        1e100,
        9007199254740993,
        "1",
        [1],
        {"n": 1},
        "NaN",
        "Infinity",
        2**63,
        -(2**63) - 1,
        0.1,
    ]
):
    gql(f"variable-int-{i:02d}", FIRST, 400, BAD_VAR, extra={"variables": {"n": value}})
ID = "query($id: ID!) { customer(id: $id) { id } }"
for i, variables in enumerate(
    [{}, {"id": None}, {"id": []}, {"id": {}}, {"id": 1.5}, {"id": True}]
):
    gql(f"variable-id-{i}", ID, 400, BAD_VAR, extra={"variables": variables})
STATUS = "query($s: [OrderStatus!]) { orders(first: 1, filter: {status: $s}) { totalCount } }"
for i, value in enumerate(["PLACED", ["NOPE"], [None], [1], "placed", [["PLACED"]]]):
    gql(
        f"variable-enum-{i}",
        STATUS,
        [200, 400],
        None if i == 0 else BAD_VAR,
        extra={"variables": {"s": value}},
    )
big(
    "variable-list-100k",
    json.dumps({"query": STATUS})[:-1] + ', "variables": {"s": [',
    '"PLACED",',
    99_999,
    '"PLACED"]}}',
    200,
    None,
)
big(
    "variable-unused-100k",
    json.dumps({"query": OK_QUERY})[:-1] + ', "variables": {"junk": [',
    "0,",
    99_999,
    "0]}}",
    200,
    None,
)
big(
    "variable-huge-string",
    json.dumps({"query": ID})[:-1] + ', "variables": {"id": "',
    "a",
    500_000,
    '"}}',
    200,
    None,
)
for i, value in enumerate(
    [
        "' OR 1=1 --",
        "1; DROP TABLE customers",
        "Q3VzdG9tZXI6MSBPUiAxPTE=",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        '{"$gt": ""}',
        "../../../../etc/passwd",
        "${jndi:ldap://x/a}",
        "\u202e\u0000\ufeff",
        "a" * 1000,
        "%00%27",
        "<script>alert(1)</script>",
    ]
):
    gql(f"variable-hostile-id-{i:02d}", ID, 200, None, extra={"variables": {"id": value}})
for i, value in enumerate(["' OR '1'='1", "%", "_", "\\", "a%' --", "\u0000"]):
    gql(
        f"variable-hostile-email-{i}",
        "query($e: String) { findCustomers(email: $e) { id } }",
        200,
        None,
        extra={"variables": {"e": value}},
    )
for i, first in enumerate([-1, -2147483648]):
    gql(
        f"argument-negative-first-{i}",
        f"{{ customers(first: {first}) {{ totalCount }} }}",
        200,
        None,
    )
gql("variables-not-object-string", OK_QUERY, 400, "BAD_REQUEST", extra={"variables": "{}"})
gql("variables-not-object-list", OK_QUERY, 400, "BAD_REQUEST", extra={"variables": [1]})
gql("variables-not-object-number", OK_QUERY, 400, "BAD_REQUEST", extra={"variables": 5})

# --- the HTTP envelope ---------------------------------------------------------------------------
BAD = "BAD_REQUEST"
for i, body in enumerate(
    [
        [{"query": OK_QUERY}],
        [{"query": OK_QUERY}] * 10,
        [],
        [OK_QUERY],
    ]
):
    cases.append(
        {
            "id": f"batch-{i}",
            "kind": "http",
            "method": "POST",
            "path": "/graphql",
            "json": body,
            "expect": {"status": 400, "code": "BATCHING_NOT_SUPPORTED"},
        }
    )
PQ = "PERSISTED_QUERY_INVALID"
for i, (body, code) in enumerate(
    [
        (1, BAD),
        ("str", BAD),
        (None, BAD),
        (True, BAD),
        ({"query": 1}, BAD),
        ({"query": []}, BAD),
        ({"query": {}}, BAD),
        ({"query": True}, BAD),
        ({}, BAD),
        ({"operationName": "A"}, BAD),
        ({"query": OK_QUERY, "operationName": 1}, BAD),
        ({"query": OK_QUERY, "extensions": []}, BAD),
        ({"query": OK_QUERY, "extensions": {"persistedQuery": 1}}, PQ),
        ({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}}}, PQ),
        ({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "x"}}}, PQ),
        ({"query": None}, BAD),
    ]
):
    cases.append(
        {
            "id": f"envelope-{i:02d}",
            "kind": "http",
            "method": "POST",
            "path": "/graphql",
            "json": body,
            "expect": {"status": 400, "code": code},
        }
    )
cases.append(
    {
        "id": "apq-unknown-hash",
        "kind": "http",
        "method": "POST",
        "path": "/graphql",
        "json": {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}}},
        "expect": {"status": 200, "code": "PERSISTED_QUERY_NOT_FOUND"},
    }
)
cases.append(
    {
        "id": "apq-hash-mismatch",
        "kind": "http",
        "method": "POST",
        "path": "/graphql",
        "json": {
            "query": OK_QUERY,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "b" * 64}},
        },
        "expect": {"status": 400, "code": "PERSISTED_QUERY_HASH_MISMATCH"},
    }
)
JSON_OK = json.dumps({"query": OK_QUERY})
for i, data in enumerate(
    [
        b'{"query": "{ stores { name } }",}',
        b"{'query': '{ stores { name } }'}",
        b'{query: "{ stores { name } }"}',
        b'{"query": "{ stores { name } }"} // comment',
        b'{"query": NaN}',
        b'{"query": Infinity}',
        b'{"query": "{ stores { name } }", "variables": {"n": NaN}}',
        b'{"query": "{ stores { name } }", "variables": {"n": -Infinity}}',
        b'{"query": "{',
        b"\xff\xfe{\x00}",
        b'{"query": "\xff\xff"}',
        b'{"query": "\xc0\xaf"}',
        b'{"query": "\xed\xa0\x80"}',
        b'{"query": "\\ud800"}',
        b'{"query": "{ stores { name } }", "variables": {"s": "\\udfff"}}',
        b"\xef\xbb\xbf" + JSON_OK.encode(),
        b"[" * 1100 + b"]" * 1100,
        b'{"a":' * 1100 + b"1" + b"}" * 1100,
        b'{"query": "{ stores { name } }", "query": "{ nope }"}',
        b'{"query": "{ stores { name } }", "variables": {"a": 1, "a": 2}}',
        b'{"query": "{ stores { name } }", "extensions": {"x": 1, "x": 1}}',
        b"null",
        b"   ",
        b"\x00",
        b"0" * 100,
        JSON_OK.encode()[:-1],
        b'"' + b"a" * 1000,
    ]
):
    raw(f"json-{i:02d}", data, 400, BAD)
for i, ctype in enumerate(
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/graphql",
        "",
        "application/json; charset=latin1",
        "application/jsonp",
        "text/html",
        "application/json-patch+json",
        "image/png",
        "application/octet-stream",
    ]
):
    raw(f"content-type-{i:02d}", JSON_OK, 415, "UNSUPPORTED_MEDIA_TYPE", content_type=ctype)
raw("content-type-upper", JSON_OK, 200, None, content_type="APPLICATION/JSON")
raw("content-type-charset-utf8", JSON_OK, 200, None, content_type="application/json;charset=UTF-8")
raw(
    "form-body",
    "query=%7B+stores+%7B+name+%7D+%7D",
    415,
    "UNSUPPORTED_MEDIA_TYPE",
    content_type="application/x-www-form-urlencoded",
)
raw(
    "multipart-body",
    '--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n' + JSON_OK + "\r\n--x--\r\n",
    415,
    "UNSUPPORTED_MEDIA_TYPE",
    content_type="multipart/form-data; boundary=x",
)
big("oversized-1mb", '{"query": "', "#", 1_100_000, '"}', 413, "PAYLOAD_TOO_LARGE")
big("oversized-5mb", "", " ", 5_000_000, "", 413, "PAYLOAD_TOO_LARGE")
big("comments-900kb", '{"query": "', "#", 900_000, "\\n" + OK_QUERY + '"}', 200, None)
raw("empty-body", b"", 400, BAD)
for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
    raw(f"method-{method.lower()}", JSON_OK, 405, "METHOD_NOT_ALLOWED", method=method)
get("get-query", [("query", OK_QUERY)], 200, None)
get("get-no-query", [], 400, BAD)
get("get-repeated-query", [("query", OK_QUERY), ("query", OK_QUERY)], 400, BAD)
get("get-bad-variables", [("query", OK_QUERY), ("variables", "{nope")], 400, BAD)
get("get-variables-nan", [("query", FIRST), ("variables", '{"n": NaN}')], 400, BAD)
get("get-mutation", [("query", "mutation { __typename }")], 405, "METHOD_NOT_ALLOWED")
get(
    "get-unknown-operation",
    [("query", "query A { stores { name } }"), ("operationName", "Z")],
    400,
    "OPERATION_NOT_FOUND",
)
cases.append(
    {
        "id": "get-invalid-utf8",
        "kind": "http",
        "method": "GET",
        "path": "/graphql",
        "raw_query": "query=%7B%20st%FF%FEores%20%7B%20name%20%7D%20%7D",
        "expect": {"status": 400, "code": PARSE},
    }
)
get("get-huge-tokens", [("query", "{ " + "__typename " * 2100 + "}")], 400, "TOO_MANY_TOKENS")
get(
    "get-introspection",
    [("query", "{ __schema { types { name } } }")],
    400,
    "INTROSPECTION_DISABLED",
)
cases.append(
    {
        "id": "get-ide-in-production",
        "kind": "http",
        "method": "GET",
        "path": "/graphql",
        "params": [],
        "headers": {"Accept": "text/html"},
        "expect": {"status": 404, "code": "NOT_FOUND"},
    }
)

# --- authentication ---------------------------------------------------------------------------
for i, auth in enumerate(
    [
        "expired",
        "alg-none",
        "garbage",
        "basic",
        "bearer-empty",
        "wrong-secret",
        "wrong-audience",
        "wrong-issuer",
        "bad-role",
        "oversized",
        "two-tokens",
        "customer-bad-subject",
        "not-yet-valid",
        "tampered",
        "nul-client-id",
        "nul-customer-subject",
        "nul-store",
    ]
):
    cases.append(
        {
            "id": f"auth-{i:02d}-{auth}",
            "kind": "http",
            "method": "POST",
            "path": "/graphql",
            "json": {"query": OK_QUERY},
            "auth": auth,
            "expect": {"status": 401, "code": "UNAUTHENTICATED"},
        }
    )
cases.append(
    {
        "id": "auth-anonymous-data",
        "kind": "http",
        "method": "POST",
        "path": "/graphql",
        "json": {"query": "{ customers(first: 1) { totalCount } }"},
        "auth": "none",
        "expect": {"status": 200, "code": "FORBIDDEN"},
    }
)
cases.append(
    {
        "id": "auth-partner-pii-request",
        "kind": "http",
        "method": "POST",
        "path": "/graphql",
        "auth": "partner",
        "json": {"query": "{ customers(first: 1) { edges { node { email } } } }"},
        "expect": {"status": 200, "code": None},
    }
)

# --- the token endpoint ------------------------------------------------------------------------
TOKEN = "/oauth/token"
for i, (data, ctype, code) in enumerate(
    [
        ("grant_type=client_credentials", "application/json", "invalid_request"),
        ("", "application/x-www-form-urlencoded", "invalid_request"),
        (
            "grant_type=password&username=a&password=b",
            "application/x-www-form-urlencoded",
            "invalid_client",
        ),
        (
            "grant_type=client_credentials&grant_type=x",
            "application/x-www-form-urlencoded",
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&client_id=ggc_x&client_secret=y",
            "application/x-www-form-urlencoded",
            "invalid_client",
        ),
        (
            "grant_type=client_credentials&client_id=%00&client_secret=%ff",
            "application/x-www-form-urlencoded",
            "invalid_client",
        ),
        ("grant_type=client_credentials", "application/x-www-form-urlencoded", "invalid_client"),
        ("a=" + "b" * 10_000, "application/x-www-form-urlencoded", "invalid_request"),
        ("\xff\xfe", "application/x-www-form-urlencoded", "invalid_request"),
    ]
):
    raw(
        f"oauth-{i}",
        data if "\xff" not in data else b"\xff\xfe",
        401 if code == "invalid_client" else 400,
        code,
        path=TOKEN,
        content_type=ctype,
    )
raw(
    "oauth-garbage-basic",
    "grant_type=client_credentials",
    401,
    "invalid_client",
    path=TOKEN,
    content_type="application/x-www-form-urlencoded",
    headers={"Authorization": "Basic %%%"},
)

# --- webhooks --------------------------------------------------------------------------------------
ORDER = json.dumps(
    {
        "type": "order.updated",
        "event_id": "e-1",
        "created_at": "2026-01-01T00:00:00Z",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "data": {"id": "o-1"},
    }
)
REPLAY = {
    "square": "other-url",
    "toast": "other-timestamp",
    "hubspot": "stale",
    "salesforce": "stale",
}
for source in ("square", "toast", "hubspot", "salesforce"):
    for signing in (
        "missing",
        "garbage",
        "wrong-secret",
        REPLAY[source],
        "truncated",
        "empty-body",
    ):
        cases.append(
            {
                "id": f"webhook-{source}-{signing}",
                "kind": "webhook",
                "source": source,
                "signing": signing,
                "body": ORDER,
                "expect": {"status": 401, "code": "invalid_signature"},
            }
        )
    # correctly signed but not JSON: kept in the inbox as rejected (Toast signs a field of
    # the JSON envelope, so for Toast it cannot even be verified)
    cases.append(
        {
            "id": f"webhook-{source}-signed-not-json",
            "kind": "webhook",
            "source": source,
            "signing": "not-json",
            "body": ORDER,
            "expect": {
                "status": 401 if source == "toast" else 422,
                "code": "invalid_signature" if source == "toast" else None,
            },
        }
    )

# --- websocket frames ("$TOKEN" is replaced by a valid support token when sent) ---
INIT = '{"type": "connection_init", "payload": {"Authorization": "Bearer $TOKEN"}}'
for case_id, frames, close in [
    (
        "ws-subscribe-before-init",
        ['{"id": "1", "type": "subscribe", "payload": {"query": "subscription { __typename }"}}'],
        4401,
    ),
    ("ws-garbage-text", ["this is not json"], 4400),
    ("ws-binary", [b"\x00\x01\x02"], 4400),
    ("ws-json-array", ["[]"], 4400),
    ("ws-json-string", ['"connection_init"'], 4400),
    ("ws-json-number", ["1"], 4400),
    ("ws-type-not-string", ['{"type": 1}'], 4400),
    ("ws-unknown-type", ['{"type": "hack"}'], 4400),
    ("ws-second-init", [INIT, INIT], 4429),
    ("ws-init-without-token", ['{"type": "connection_init"}'], 4403),
    (
        "ws-init-bad-token",
        ['{"type": "connection_init", "payload": {"Authorization": "Bearer x.y.z"}}'],
        4403,
    ),
    ("ws-init-payload-not-object", ['{"type": "connection_init", "payload": [1]}'], 4400),
]:
    cases.append(
        {
            "id": case_id,
            "kind": "websocket",
            "frames": [
                {"b64": base64.b64encode(f).decode()} if isinstance(f, bytes) else {"text": f}
                for f in frames
            ],
            "expect": {"close": close},
        }
    )


# a flood of invalid subscriptions: one typed error each, and the socket stays usable
cases.append(
    {
        "id": "ws-subscribe-flood-after-init",
        "kind": "websocket",
        "frames": [{"text": INIT}]
        + [
            {
                "text": json.dumps(
                    {
                        "id": str(i),
                        "type": "subscribe",
                        "payload": {"query": "subscription { nope }"},
                    }
                )
            }
            for i in range(200)
        ],
        "expect": {"acknowledged": True, "errors": 200},
    }
)


def main() -> None:
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=True) + "\n")
    print(f"{len(cases)} cases")


if __name__ == "__main__":
    main()
