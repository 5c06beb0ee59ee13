"""The OpenAPI document's conventions, each a rule in one place: operation ids, tags, shared
schemas and the responses of every operation.

quart-schema builds the document from the routes' decorators; this provider adds what a client
generator needs (`openapi-python-client`, `openapi-typescript`):

- an operation id in one style, verb then noun: the handler's name (`create_agent`), with its
  method's verb in front when it does not start with one (`campaign_status` → `get_...`);
- one tag per operation, its resource: the blueprint's name (`BLUEPRINT_TAGS` renames a few), or a
  route's own quart-schema `tag`;
- request and response bodies as named component schemas, generated together so that one class is
  one schema: `AgentOut` → `Agent`, `LoginIn` → `LoginRequest`, `Page[AgentOut]` → `AgentPage`;
- the shared `Error` body for every 4xx and 5xx;
- the answers that are no JSON model: `@document_body` (CSV, audio, Prometheus text), and 204
  for a delete that documents no other success.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, TypeVar

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode
from quart import Blueprint
from quart_rate_limiter import QUART_RATE_LIMITER_LIMITS_ATTRIBUTE
from quart_schema import DataSource
from quart_schema.openapi import (
    QUART_SCHEMA_OPERATION_ID_ATTRIBUTE,
    QUART_SCHEMA_TAG_ATTRIBUTE,
    OpenAPIProvider,
)
from quart_schema.validation import (
    QUART_SCHEMA_QUERYSTRING_ATTRIBUTE,
    QUART_SCHEMA_REQUEST_ATTRIBUTE,
    QUART_SCHEMA_RESPONSE_ATTRIBUTE,
)
from werkzeug.routing import BaseConverter, Rule, UUIDConverter

from control.http.errors import ErrorOut
from control.http.principal import ANY_USER, GUARD_ATTRIBUTE, PUBLIC
from control.models import Role

T = TypeVar("T", bound=Callable[..., Any])

REF_PREFIX = "#/components/schemas/"
BODY_ATTRIBUTE = "_voxline_openapi_bodies"

# The first word of every operation id. A handler named otherwise gets its method's verb.
VERBS = frozenset(
    {
        "accept",
        "add",
        "cancel",
        "create",
        "delete",
        "export",
        "generate",
        "get",
        "invite",
        "list",
        "login",
        "logout",
        "map",
        "publish",
        "purchase",
        "query",
        "receive",
        "refresh",
        "register",
        "remove",
        "replace",
        "request",
        "reset",
        "restore",
        "retry",
        "revoke",
        "rotate",
        "run",
        "search",
        "send",
        "set",
        "signup",
        "store",
        "switch",
        "try",
        "update",
        "upload",
    }
)
METHOD_VERBS = {
    "GET": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}

# A blueprint's tag is its name, except where the resource reads better otherwise.
BLUEPRINT_TAGS = {
    "agent_tests": "agent tests",
    "agent_versions": "agent versions",
    "batch": "batches",
    "phonenumbers": "phone numbers",
}
# Tags that routes set themselves (quart-schema's `tag`): no module docstring describes them.
ROUTE_TAG_DESCRIPTIONS = {"knowledge": "An agent's knowledge files and queries over them."}

# Error responses every operation may answer, by rule (see `_error_statuses`), and their text.
ERROR_RESPONSES = {
    "400": ("BadRequest", "The request is invalid; a VALIDATION_ERROR lists the fields."),
    "401": ("Unauthenticated", "Not logged in, a wrong API key, or an expired token."),
    "403": ("Forbidden", "Your role may not do this, or you are not in the workspace."),
    "404": ("NotFound", "No such resource in the workspace."),
    "429": ("RateLimited", "Too many requests, or no capacity; retry after `Retry-After`."),
    "4XX": ("ClientError", "Another error of the request (409 conflict, 413 too large, ...)."),
    "5XX": ("ServerError", "A server error: 500 (logged), or 503 when a dependency is down."),
}
# The guards that answer 403 besides 401: a role too low, an API key where a user must log in.
FORBIDDING_GUARDS = frozenset({ANY_USER, *(role.value for role in Role)})


def document_body(status: int, *media_types: str, description: str) -> Callable[[T], T]:
    """Document an answer that is no JSON model: `@document_body(200, "text/csv", description=...)`.

    With no media type, the answer has no body (a 204). Place it with `validate_response`.
    """

    def decorator(view: T) -> T:
        bodies = {**getattr(view, BODY_ATTRIBUTE, {}), status: (media_types, description)}
        setattr(view, BODY_ATTRIBUTE, bodies)
        return view

    return decorator


def component_name(name: str) -> str:
    """The component schema's name for a model pydantic names `name`.

    `AgentOut` → `Agent`, `LoginIn` → `LoginRequest`, `Page_AgentOut_` (`Page[AgentOut]`) →
    `AgentPage`; other names stay.
    """
    page = re.fullmatch(r"Page_(\w+)_", name)
    if page:
        return f"{component_name(page[1])}Page"
    if re.search(r"[a-z]Out$", name):
        return name.removesuffix("Out")
    if re.search(r"[a-z]In$", name):
        return f"{name.removesuffix('In')}Request"
    return name


def operation_id(method: str, func: Callable[..., Any]) -> str:
    """The handler's name (or its quart-schema `operation_id`), verb first."""
    name = getattr(func, QUART_SCHEMA_OPERATION_ID_ATTRIBUTE, func.__name__)
    if name.split("_")[0] in VERBS:
        return name
    return f"{METHOD_VERBS.get(method, method.lower())}_{name}"


def _media_schema(media_type: str) -> dict[str, Any]:
    if media_type.startswith("text/"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


def _pascal(field: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))


def _enum_nodes(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A field's inline enumerations (of two values or more: one is a constant)."""
    if len(schema.get("enum", ())) > 1:
        yield schema
    for member in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        yield from _enum_nodes(member)
    if isinstance(schema.get("items"), dict):
        yield from _enum_nodes(schema["items"])


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref.removeprefix(REF_PREFIX)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


class SharedSchemas:
    """Every model of the document generated in one pass: one class, one named schema."""

    def __init__(self, models: dict[tuple[Any, JsonSchemaMode], None]) -> None:
        inputs = [((model, mode), mode, TypeAdapter(model)) for model, mode in models]
        top, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_PREFIX + "{model}")
        self._names: dict[str, str] = {}
        for old in definitions.get("$defs", {}):
            new = component_name(old)
            clash = [other for other, taken in self._names.items() if taken == new]
            if clash or "__" in new:
                # pydantic qualifies two classes of one name with their modules: rename one.
                raise ValueError(f"two models would be the schema {new!r}: {[*clash, old]}")
            self._names[old] = new
        # Generators name a schema's class after its title: pydantic's is the Python class's.
        self.definitions: dict[str, Any] = {
            self._names[name]: {**self._renamed(schema), "title": self._names[name]}
            for name, schema in definitions.get("$defs", {}).items()
        }
        self._top = {key: self._renamed(schema) for (key, _), schema in top.items()}
        self._name_enums()

    def _name_enums(self) -> None:
        """Name every enumeration, as pydantic names an `Enum` class: a `Literal` field's values
        become a schema named after the field (`call_type` → `CallType`) when several models
        share them, else after its model and field (`BatchUpdateAction`)."""
        found = [
            (model, field, node)
            for model, schema in list(self.definitions.items())
            for field, field_schema in schema.get("properties", {}).items()
            for node in _enum_nodes(field_schema)
        ]
        values: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
        models: dict[str, set[str]] = defaultdict(set)
        for model, field, node in found:
            values[field].add(tuple(node["enum"]))
            models[field].add(model)
        for model, field, node in found:
            shared = len(values[field]) == 1 and len(models[field]) > 1
            name = _pascal(field) if shared else f"{model}{_pascal(field)}"
            enum = {"title": name, "type": node.get("type", "string"), "enum": node["enum"]}
            if self.definitions.setdefault(name, enum) != enum:
                raise ValueError(f"the enumeration {name!r} is also another schema's name")
            for key in enum:
                node.pop(key, None)
            node["$ref"] = REF_PREFIX + name

    def _renamed(self, node: Any) -> Any:
        if isinstance(node, dict):
            renamed = {key: self._renamed(value) for key, value in node.items()}
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF_PREFIX):
                renamed["$ref"] = REF_PREFIX + self._names[ref.removeprefix(REF_PREFIX)]
            return renamed
        if isinstance(node, list):
            return [self._renamed(value) for value in node]
        return node

    def of(self, model: Any, mode: JsonSchemaMode) -> dict[str, Any]:
        """The schema of `model` (a `$ref` for a model class)."""
        return self._top[(model, mode)]

    def resolved(self, model: Any, mode: JsonSchemaMode) -> dict[str, Any]:
        """The schema of `model` itself, not a reference to it (for query parameters)."""
        schema = self.of(model, mode)
        ref = schema.get("$ref", "")
        return self.definitions[ref.removeprefix(REF_PREFIX)] if ref else schema


class VoxlineOpenAPIProvider(OpenAPIProvider):
    """quart-schema's provider with Voxline's conventions (see the module docstring)."""

    _shared: SharedSchemas

    def schema(self) -> dict[str, Any]:
        self._shared = SharedSchemas(self._models())
        self._tags: dict[str, str] = {}
        document = super().schema()
        document["tags"] = [
            {"name": name, "description": description} for name, description in self._tags.items()
        ]
        error = self._shared.of(ErrorOut, "serialization")
        document["components"]["responses"] = {
            name: {"description": text, "content": {"application/json": {"schema": error}}}
            for name, text in ERROR_RESPONSES.values()
        }
        document["components"]["schemas"] = self._referenced(document)
        return document

    def _models(self) -> dict[tuple[Any, JsonSchemaMode], None]:
        """Every model a documented route uses, in order, with the mode of its schema."""
        models: dict[tuple[Any, JsonSchemaMode], None] = {(ErrorOut, "serialization"): None}
        for rule in self.generate_rules():
            func = self._app.view_functions[rule.endpoint]
            if (request := getattr(func, QUART_SCHEMA_REQUEST_ATTRIBUTE, None)) is not None:
                models[(request[0], "validation")] = None
            if (query := getattr(func, QUART_SCHEMA_QUERYSTRING_ATTRIBUTE, None)) is not None:
                models[(query, "validation")] = None
            for model, _ in getattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {}).values():
                models[(model, "serialization")] = None
        return models

    def _referenced(self, document: dict[str, Any]) -> dict[str, Any]:
        """The component schemas the document uses (query models are inlined as parameters)."""
        definitions = self._shared.definitions
        pending = list(_refs(document["paths"])) + list(_refs(document["components"]))
        used: set[str] = set()
        while pending:
            name = pending.pop()
            if name not in used:
                used.add(name)
                pending.extend(_refs(definitions[name]))
        return {name: definitions[name] for name in sorted(used)}

    def operation_id(self, method: str, path: str, func: Callable[..., Any]) -> str:
        return operation_id(method, func)

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, UUIDConverter):
            parameter["schema"] = {"type": "string", "format": "uuid"}
        return parameter

    def build_querystring_parameters(
        self, model: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        schema = self._shared.resolved(model, "validation")
        required = set(schema.get("required", ()))
        parameters = []
        for name, property_schema in schema.get("properties", {}).items():
            property_schema = dict(property_schema)
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in property_schema:
                parameter["description"] = property_schema.pop("description")
            parameters.append({**parameter, "schema": property_schema})
        return parameters, {}

    def build_request_body(
        self, model: Any, source: DataSource
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        encoding = {
            DataSource.JSON: "application/json",
            DataSource.FORM_MULTIPART: "multipart/form-data",
        }.get(source, "application/x-www-form-urlencoded")
        schema = self._shared.of(model, "validation")
        return {"required": True, "content": {encoding: {"schema": schema}}}, {}

    def build_response_object(
        self, model: Any, headers_model: Any | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if headers_model is not None:
            raise NotImplementedError("document response headers in the route's docstring")
        schema = self._shared.of(model, "serialization")
        return {"content": {"application/json": {"schema": schema}}}, {}

    def build_paths(self, rule: Rule) -> tuple[dict, dict]:
        paths, components = super().build_paths(rule)
        func = self._app.view_functions[rule.endpoint]
        blueprint_name = rule.endpoint.rpartition(".")[0]
        blueprint = self._app.blueprints.get(blueprint_name) if blueprint_name else None
        for operations in paths.values():
            for method, operation in operations.items():
                self._complete(operation, method.upper(), func, blueprint)
        return paths, components

    def _tag(self, func: Callable[..., Any], blueprint: Blueprint | None) -> str:
        """The route's own tag, else its blueprint's resource (named `BLUEPRINT_TAGS`)."""
        tags = getattr(func, QUART_SCHEMA_TAG_ATTRIBUTE, None) or getattr(
            blueprint, QUART_SCHEMA_TAG_ATTRIBUTE, None
        )
        if tags:
            if len(tags) != 1:
                raise ValueError(f"{func.__name__}: one tag per operation, not {sorted(tags)}")
            (tag,) = tags
            self._tags.setdefault(tag, ROUTE_TAG_DESCRIPTIONS.get(tag, ""))
            return tag
        name = blueprint.name if blueprint is not None else "default"
        tag = BLUEPRINT_TAGS.get(name, name)
        module = sys.modules.get(blueprint.import_name) if blueprint is not None else None
        self._tags.setdefault(tag, (inspect.getdoc(module) or "").split("\n\n")[0])
        return tag

    def _complete(
        self,
        operation: dict[str, Any],
        method: str,
        func: Callable[..., Any],
        blueprint: Blueprint | None,
    ) -> None:
        """Tag, security, responses (bodies that are no model, 204, errors) of one operation."""
        operation["tags"] = [self._tag(func, blueprint)]
        if not operation.get("description"):
            operation.pop("description", None)
        else:
            operation["description"] = operation["description"].strip()
        if getattr(func, GUARD_ATTRIBUTE, None) == PUBLIC:
            operation["security"] = []

        responses: dict[str, Any] = {}
        for status, response in operation["responses"].items():
            responses[str(status)] = {**response, "description": HTTPStatus(status).phrase}
        for status, (media_types, description) in getattr(func, BODY_ATTRIBUTE, {}).items():
            responses[str(status)] = {"description": description}
            if media_types:
                responses[str(status)]["content"] = {
                    media_type: {"schema": _media_schema(media_type)} for media_type in media_types
                }
        if method == "DELETE" and not any(status.startswith("2") for status in responses):
            responses["204"] = {"description": "Deleted; no body."}
        for status in self._error_statuses(operation, func):
            responses[status] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}
        operation["responses"] = dict(sorted(responses.items()))

    @staticmethod
    def _error_statuses(operation: dict[str, Any], func: Callable[..., Any]) -> list[str]:
        """The error statuses an operation documents: those its shape implies, then 4XX and 5XX."""
        guard = getattr(func, GUARD_ATTRIBUTE, None)
        parameters = operation["parameters"]
        statuses = []
        if "requestBody" in operation or any(p["in"] == "query" for p in parameters):
            statuses.append("400")
        if guard != PUBLIC:
            statuses.append("401")
        if guard in FORBIDDING_GUARDS:
            statuses.append("403")
        if any(p["in"] == "path" for p in parameters):
            statuses.append("404")
        if getattr(func, QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, None):
            statuses.append("429")
        return [*statuses, "4XX", "5XX"]
