"""Checks real responses against docs/openapi.yaml: status, content type, body schema, headers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.server_support import ROOT, Response

SPEC_PATH = ROOT / "docs" / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
_BASE = "urn:pulse-openapi"


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """JSON Schema patterns are ECMA-262: ``$`` is the end of the string, never before a final
    newline as in Python's ``re``."""
    if not validator.is_type(instance, "string"):
        return
    python = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") \
        else pattern
    if not re.search(python, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})
_REGISTRY = Registry().with_resource(
    _BASE, Resource.from_contents(SPEC, default_specification=DRAFT202012))


def validator(pointer: str) -> Any:
    """A validator for the schema at ``pointer`` (e.g. ``#/components/schemas/Error``)."""
    return _Validator({"$ref": _BASE + pointer}, registry=_REGISTRY)


_VALIDATORS: dict[str, Any] = {}


def _schema_validator(schema: dict[str, Any]) -> Any:
    if "$ref" in schema and len(schema) == 1:
        ref = schema["$ref"]
        if ref not in _VALIDATORS:
            _VALIDATORS[ref] = validator(ref)
        return _VALIDATORS[ref]
    return _Validator(_anchored(schema), registry=_REGISTRY)


def _anchored(node: Any) -> Any:
    """An inline schema whose ``#/…`` references point into the spec (not into itself)."""
    if isinstance(node, dict):
        return {k: (_BASE + v if k == "$ref" and isinstance(v, str) and v.startswith("#/")
                    else _anchored(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_anchored(v) for v in node]
    return node


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def is_http_layer_400(response: Response) -> bool:
    """Tornado's bare answer to a request that is not valid HTTP (documented in the spec)."""
    return response.status == 400 and not response.body and "content-type" not in response.headers


def check_response(path: str, method: str, response: Response) -> None:
    """AssertionError unless ``response`` is one the spec declares for ``method path``."""
    assert response.status < 500, f"{method} {path}: {response.status} {response.body[:300]!r}"
    if is_http_layer_400(response):
        return
    operation = SPEC["paths"][path].get(method.lower())
    if operation is None:  # a method the path does not serve: 405 with the JSON error
        assert response.status == 405, (method, path, response.status)
        declared: dict[str, Any] = _resolve({"$ref": "#/components/responses/Error"})
    else:
        status = str(response.status)
        assert status in operation["responses"], \
            f"{method} {path} answered {status}, not in the spec: {response.body[:300]!r}"
        declared = _resolve(operation["responses"][status])
    for name, header in declared.get("headers", {}).items():
        value = response.headers.get(name.lower())
        if header.get("required"):
            assert value is not None, f"{method} {path} {response.status}: no {name} header"
        if value is not None:
            errors = list(_schema_validator(header["schema"]).iter_errors(value))
            assert not errors, f"{name}: {value!r}: {errors[0].message}"
    content = declared.get("content")
    if not content:
        assert not response.body, f"{method} {path} {response.status} has a body"
        return
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media in content, f"{method} {path} {response.status}: Content-Type {media!r}"
    if media == "application/json":
        document = json.loads(response.body)
        errors = list(_schema_validator(content[media]["schema"]).iter_errors(document))
        assert not errors, f"{method} {path} {response.status}: {errors[0].message}"
