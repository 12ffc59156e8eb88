"""coursegraph's definition of a server error, for schemathesis.

schemathesis' built-in GraphQL check counts every resolver error whose code is not one of
Apollo's few client codes as a server error — including FORBIDDEN, NOT_FOUND and CONFLICT,
which coursegraph documents as the expected answer to a request that names a
missing row, a row of another tenant, or a taken slug. This check keeps the strict parts
(HTTP 5xx, non-JSON bodies, INTERNAL_SERVER_ERROR, an error without a code, null in a
non-nullable field) and accepts coursegraph's documented client-side codes.
"""

import schemathesis

CLIENT_SIDE = {
    "BAD_USER_INPUT",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "CONFLICT",
    "QUERY_TOO_COMPLEX",
    "PERSISTED_QUERY_NOT_FOUND",
}


@schemathesis.check
def coursegraph_no_server_error(ctx, response, case):
    """No 5xx, no INTERNAL_SERVER_ERROR, every error carries a known code."""
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:500]}")
    try:
        payload = response.json()
    except ValueError:
        raise AssertionError(f"not JSON: {response.text[:200]}")
    if not isinstance(payload, dict):
        raise AssertionError("the response is not a JSON object")
    for error in payload.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code not in CLIENT_SIDE:
            raise AssertionError(f"server error ({code}): {error.get('message')}")
        if "Cannot return null for non-nullable field" in error.get("message", ""):
            raise AssertionError(f"schema violation: {error['message']}")
