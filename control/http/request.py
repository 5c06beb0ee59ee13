"""The request class of the app: a body that is not UTF-8 is a 400, wherever it is read."""

from __future__ import annotations

from typing import Any

from quart import Request

from control.http.errors import APIError


class BodyNotText(APIError):
    """A text or JSON body whose bytes are not valid UTF-8."""

    def __init__(self) -> None:
        super().__init__(400, "BAD_REQUEST", "The request body is not valid UTF-8 text.")


class VoxlineRequest(Request):
    """Quart's request, except that undecodable bytes are the client's error, not a 500.

    Quart decodes the body before its JSON parser's error handling starts, so bytes such as
    `EA 1F 48` raised `UnicodeDecodeError` from every `get_json` (and from quart-schema's
    `validate_request`) and from `get_data(as_text=True)`.
    """

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
        try:
            return await super().get_json(force=force, silent=silent, cache=cache)
        except BodyNotText:
            if silent:
                return None
            raise
