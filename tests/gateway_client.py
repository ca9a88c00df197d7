"""A second process for cross-process tests: reads a model group per line on stdin, answers one
JSON line per request with what served it (run with ``python -m tests.gateway_client``)."""

from __future__ import annotations

import json
import sys

import django


def main() -> None:
    django.setup()
    from providers import gateway

    context = gateway.CallContext(app="api")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        group = line.strip()
        if not group:
            continue
        try:
            result = gateway.chat(group, [{"role": "user", "content": "hi"}], context=context)
            served = result.outcome.served_by
            answer = {"model": served.model if served else None}
        except gateway.GatewayError as exc:
            answer = {"error": exc.kind}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
