"""Examples from the official Deribit specs (reference/deribit/asyncapi.json and openapi.json)."""

from __future__ import annotations

from specs import load_spec


def channel_examples(channel: str) -> dict[str, object]:
    """Payload examples of a subscription channel, by example name."""
    message = load_spec("asyncapi.json")["channels"][channel]["messages"]["subscription_message"]
    return {example["name"]: example["payload"] for example in message["examples"]}


def method_response(method: str) -> dict:
    """The response example of a JSON-RPC method."""
    content = load_spec("openapi.json")["paths"][f"/{method}"]["get"]["responses"]["200"]["content"]
    return content["application/json"]["examples"]["response"]["value"]


def method_tags(method: str) -> list[str]:
    return load_spec("openapi.json")["paths"][f"/{method}"]["get"]["tags"]


def all_methods() -> list[str]:
    return [path.lstrip("/") for path in load_spec("openapi.json")["paths"]]
