"""The request class of the app and what it takes: a body of no more bytes than its route's
limit, UTF-8 text where text is read, JSON nested no deeper than `MAX_JSON_DEPTH`, and no NUL
character in a query parameter or JSON text (PostgreSQL cannot store one)."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate, count
from operator import sub
from typing import Any, TypeVar, cast

from quart import Request, current_app
from quart.globals import request_ctx
from quart.wrappers.request import Body
from werkzeug.exceptions import RequestEntityTooLarge

from control.http.errors import APIError

#: The deepest nesting of arrays and objects a JSON body may have (the API's own go four deep).
MAX_JSON_DEPTH = 64
UPLOAD_ATTRIBUTE = "_voxline_takes_upload"

ViewT = TypeVar("ViewT", bound=Callable[..., Any])

# The depth of a JSON text without parsing it, in linear time at C speed: escapes out first (so
# strings hold no backslash), then strings (so no bracket inside one counts), then everything
# but brackets. An opening bracket becomes 2 and a closing one 0, so the running sum minus the
# position is the depth there.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")
_BRACKET_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def json_depth(text: bytes) -> int:
    """How deep arrays and objects nest in `text` (up to its first error, if it is not JSON)."""
    bare = _STRING.sub(b"", _ESCAPE.sub(b"", text))
    weights = bare.translate(_BRACKET_WEIGHTS, _NOT_A_BRACKET)
    return max(map(sub, accumulate(weights), count(1)), default=0)


class BodyNotText(APIError):
    """A text or JSON body whose bytes are not valid UTF-8."""

    def __init__(self) -> None:
        super().__init__(400, "BAD_REQUEST", "The request body is not valid UTF-8 text.")


class JSONTooDeep(APIError):
    """A JSON body nested deeper than `MAX_JSON_DEPTH`."""

    def __init__(self) -> None:
        super().__init__(
            400,
            "JSON_TOO_DEEP",
            f"The JSON body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.",
        )


class TextHasNul(APIError):
    """A query parameter or JSON text holding a NUL character, which no column can hold."""

    def __init__(self, field: str) -> None:
        message = "must not contain NUL characters"
        super().__init__(
            400,
            "VALIDATION_ERROR",
            f"Invalid request: {field}: {message}",
            errors=[{"field": field, "message": message}],
        )


def has_escaped_nul(text: bytes) -> bool:
    """Whether JSON `text` holds `\\u0000` (not `\\\\u0000`, an escaped backslash and
    `u0000`): pairs of backslashes are escaped backslashes, from the left, as JSON reads them."""
    return b"\\u0000" in text and b"\\u0000" in text.replace(b"\\\\", b"")


class BodyTooLarge(APIError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, "PAYLOAD_TOO_LARGE", f"The request body is larger than {limit} bytes."
        )


class BoundedBody(Body):
    """Quart's body, whose limit is lowered to the route's once the route is known.

    Past the limit, what arrives is dropped as it arrives and reading the body answers 413: a
    chunked body is never buffered beyond its route's limit.
    """

    def limit_to(self, max_bytes: int) -> None:
        self._max_content_length = max_bytes
        if len(self._data) > max_bytes:  # arrived before the route was known
            self._must_raise = RequestEntityTooLarge()
            self.set_complete()


class VoxlineRequest(Request):
    """Quart's request, except that a body the app cannot take is the client's error, not a 500.

    Quart decodes the body before its JSON parser's error handling starts, so bytes such as
    `EA 1F 48` raised `UnicodeDecodeError` from every `get_json` (and from quart-schema's
    `validate_request`) and from `get_data(as_text=True)`; and `"[" * 100000` raised
    `RecursionError` from the parser.
    """

    body_class = BoundedBody

    def limit_body(self, max_bytes: int) -> None:
        """Refuse a body over `max_bytes` (413): at once when its `Content-Length` says so, else
        as it streams in."""
        if self.content_length is not None and self.content_length > max_bytes:
            raise BodyTooLarge(max_bytes)
        cast(BoundedBody, self.body).limit_to(max_bytes)

    async def get_data(
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> Any:
        try:
            return await super().get_data(
                cache=cache, as_text=as_text, parse_form_data=parse_form_data
            )
        except UnicodeDecodeError as error:
            raise BodyNotText() from error

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The body as JSON (see Quart's); a body nested too deeply is a 400 before it is parsed."""
        try:
            if force or self.is_json:
                raw = await self.get_data(cache=True, as_text=False, parse_form_data=False)
                # Fewer brackets than the limit cannot nest deeper than it: most bodies stop here.
                if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
                    if json_depth(raw) > MAX_JSON_DEPTH:
                        raise JSONTooDeep()
                if has_escaped_nul(raw):  # refused whole, before anything is half-written
                    raise TextHasNul("body")
            try:
                return await super().get_json(force=force, silent=silent, cache=cache)
            except RecursionError as error:  # not reachable past the check; never a 500
                raise JSONTooDeep() from error
        except (BodyNotText, JSONTooDeep, TextHasNul):
            if silent:
                return None
            raise


def takes_upload(view: ViewT) -> ViewT:
    """Mark a route whose body is an upload (a multipart form, a recording): it may be as large
    as `VOXLINE_MAX_UPLOAD_REQUEST_BYTES`. Every other route takes at most
    `VOXLINE_MAX_JSON_BYTES`, whatever the body's Content-Type says."""
    setattr(view, UPLOAD_ATTRIBUTE, True)
    return view


async def bound_request() -> None:
    """Before each request: no NUL in its query parameters, and its body bounded by its
    route's limit (a JSON route's by default)."""
    # The request itself, once: each use of the `request` proxy looks the context up again.
    current = cast(VoxlineRequest, request_ctx.request)
    query = current.query_string
    if b"%00" in query or b"\x00" in query:  # the only ways a NUL reaches it: else not parsed
        for name, value in current.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                raise TextHasNul(name.replace("\x00", ""))
    await limit_body_size(current)


async def limit_body_size(current: VoxlineRequest) -> None:
    """Bound the request's body by its route's limit (a JSON route's by default)."""
    settings = current_app.config["SETTINGS"]
    view = current_app.view_functions.get(current.endpoint or "")
    if getattr(view, UPLOAD_ATTRIBUTE, False):
        current.limit_body(settings.max_upload_request_bytes)
        return
    current.limit_body(settings.max_json_bytes)
    if current.content_length is None and current.method not in ("GET", "HEAD"):
        # Chunked: read now (the read stops at the limit), so that every route over it answers
        # 413, even one that would not read a body of this Content-Type.
        await current.get_data(cache=True, as_text=False, parse_form_data=False)
