"""Custom-function parameters: the forms an agent may give them in, made one JSON Schema."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_SCHEMA_KEYS = {"type", "properties", "required", "additionalProperties", "$schema", "title"}


def _normalise_property(name: str, prop: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not _PARAM_NAME.match(name):
        raise ValueError(
            f"parameter name {name!r} is invalid; use letters, digits and underscores "
            "(at most 64 characters)"
        )
    if isinstance(prop, str):  # {"city": "string"}
        prop = {"type": prop}
    if not isinstance(prop, Mapping):
        raise ValueError(
            f"parameter {name!r} must be an object such as "
            '{"type": "string", "description": "..."}'
        )
    prop = {key: value for key, value in prop.items() if key != "required"}
    types = prop.get("type")
    if types is None:
        if not any(key in prop for key in ("enum", "anyOf", "oneOf", "allOf", "$ref", "const")):
            prop["type"] = "string"
    else:
        for type_name in types if isinstance(types, list) else [types]:
            if type_name not in JSON_TYPES:
                raise ValueError(
                    f"parameter {name!r} has unknown type {type_name!r}; "
                    f"allowed: {', '.join(JSON_TYPES)}"
                )
    if "description" in prop and not isinstance(prop["description"], str):
        raise ValueError(f"parameter {name!r}: description must be a string")
    if prop.get("type") == "array" and "items" not in prop:
        prop["items"] = {"type": "string"}  # OpenAI rejects array schemas without items
    return dict(prop)


def normalise_parameters(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Turn custom-function parameters into a JSON Schema object.

    Accepts a JSON Schema object (`{"type": "object", "properties": {...}, "required": [...]}`),
    the flat form `{name: {"type": ..., "description": ..., "required": bool}}` (each parameter
    is required unless it says `"required": false`), or `{}`/None for no parameters.

    Returns:
        `{"type": "object", "properties": {...}, "required": [...]}` (plus any other schema keys
        the input carried, such as `additionalProperties`).

    Raises:
        ValueError: with a message naming the offending parameter.
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValueError("parameters must be an object (a JSON Schema or {name: {type, ...}})")

    is_schema = params.get("type") == "object" or isinstance(params.get("properties"), Mapping)
    if "type" in params and not isinstance(params["type"], Mapping) and not is_schema:
        raise ValueError(f"parameters must be an object schema, not type {params['type']!r}")

    if is_schema:
        schema_properties = params.get("properties", {})
        if not isinstance(schema_properties, Mapping):
            raise ValueError("'properties' must be an object")
        required = params.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise ValueError("'required' must be a list of parameter names")
        schema = {key: value for key, value in params.items() if key in _SCHEMA_KEYS}
        schema.pop("$schema", None)
        schema["type"] = "object"
        schema["properties"] = {
            name: _normalise_property(name, prop) for name, prop in schema_properties.items()
        }
        unknown = [name for name in required if name not in schema["properties"]]
        if unknown:
            raise ValueError(f"required parameter(s) not in properties: {', '.join(unknown)}")
        schema["required"] = list(dict.fromkeys(required))
        return schema

    properties: dict[str, Any] = {}
    required_names: list[str] = []
    for name, prop in params.items():
        properties[name] = _normalise_property(name, prop)
        flag = prop.get("required", True) if isinstance(prop, Mapping) else True
        if not isinstance(flag, bool):
            raise ValueError(f"parameter {name!r}: 'required' must be true or false")
        if flag:
            required_names.append(name)
    return {"type": "object", "properties": properties, "required": required_names}
