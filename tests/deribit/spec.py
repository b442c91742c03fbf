"""Examples from the official Deribit specs (reference/deribit/asyncapi.json and openapi.json)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

SPEC_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "deribit"


@cache
def _load(name: str) -> dict:
    path = SPEC_DIR / name
    if not path.is_file():
        pytest.skip(f"official Deribit spec {path} not present")
    return json.loads(path.read_text())


def channel_examples(channel: str) -> dict[str, object]:
    """Payload examples of a subscription channel, by example name."""
    message = _load("asyncapi.json")["channels"][channel]["messages"]["subscription_message"]
    return {example["name"]: example["payload"] for example in message["examples"]}


def method_response(method: str) -> dict:
    """The response example of a JSON-RPC method."""
    content = _load("openapi.json")["paths"][f"/{method}"]["get"]["responses"]["200"]["content"]
    return content["application/json"]["examples"]["response"]["value"]


def method_tags(method: str) -> list[str]:
    return _load("openapi.json")["paths"][f"/{method}"]["get"]["tags"]


def all_methods() -> list[str]:
    return [path.lstrip("/") for path in _load("openapi.json")["paths"]]
