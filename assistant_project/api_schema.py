"""The OpenAPI schema's shared parts: response shapes of the API views (function views return plain
dicts, so drf-spectacular cannot guess them), the API-key security scheme, and the error responses
every operation can give, in the one error shape of ``api_errors``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers

JSON = dict[str, Any]


class ApiKeySchema(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "assistant_project.accounts.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> JSON:
        return {"type": "http", "scheme": "bearer", "description": "An API key from the API keys page."}


class Usage(serializers.Serializer[Any]):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class Conversation(serializers.Serializer[Any]):
    conversation_id = serializers.IntegerField()
    title = serializers.CharField(allow_blank=True)
    model = serializers.CharField()
    system_prompt = serializers.CharField(allow_blank=True)
    temperature = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ConversationList(serializers.Serializer[Any]):
    conversations = Conversation(many=True)


class Message(serializers.Serializer[Any]):
    """A message; the fields after ``created_at`` are on assistant messages only."""

    id = serializers.IntegerField()
    role = serializers.CharField()
    content = serializers.CharField(allow_blank=True)
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    model_used = serializers.CharField(required=False, allow_blank=True)
    provider = serializers.CharField(required=False, allow_blank=True)
    model = serializers.CharField(required=False, allow_blank=True)
    usage = Usage(required=False)
    cost = serializers.FloatField(required=False)
    latency_ms = serializers.FloatField(required=False, allow_null=True)
    ttft_ms = serializers.FloatField(required=False, allow_null=True)
    fallbacks = serializers.ListField(required=False, child=serializers.CharField())
    attempts = serializers.IntegerField(required=False)
    context_dropped = serializers.IntegerField(required=False)
    sources = serializers.ListField(required=False, child=serializers.DictField())
    downgraded_from = serializers.CharField(required=False, allow_null=True)
    error = serializers.CharField(required=False, allow_blank=True)


class MessageList(serializers.Serializer[Any]):
    conversation_id = serializers.IntegerField()
    messages = Message(many=True)


class Answer(serializers.Serializer[Any]):
    response = serializers.CharField(allow_blank=True)
    message_id = serializers.IntegerField()
    status = serializers.CharField()
    model_used = serializers.CharField(allow_blank=True)
    provider = serializers.CharField(allow_blank=True)
    model = serializers.CharField(allow_blank=True)
    usage = Usage()
    cost = serializers.FloatField()
    latency_ms = serializers.FloatField(allow_null=True)
    ttft_ms = serializers.FloatField(allow_null=True)
    fallbacks = serializers.ListField(child=serializers.CharField())
    attempts = serializers.IntegerField()
    downgraded_from = serializers.CharField(allow_null=True)
    context_dropped = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)


class Document(serializers.Serializer[Any]):
    document_id = serializers.IntegerField()
    name = serializers.CharField()
    collection = serializers.CharField()
    type = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    status = serializers.CharField()
    error = serializers.CharField(allow_null=True)
    pages = serializers.IntegerField(allow_null=True)
    chunks_total = serializers.IntegerField()
    chunks_done = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class DocumentList(serializers.Serializer[Any]):
    documents = Document(many=True)


class Source(serializers.Serializer[Any]):
    content = serializers.CharField()
    document = serializers.CharField()
    document_id = serializers.IntegerField()
    page = serializers.IntegerField(allow_null=True)
    score = serializers.FloatField()
    cited = serializers.BooleanField()


class QueryAnswer(serializers.Serializer[Any]):
    answer = serializers.CharField(allow_blank=True)
    sources = Source(many=True)
    query = serializers.CharField()
    model_used = serializers.CharField(allow_blank=True)
    context_chunks = serializers.IntegerField()


class Segment(serializers.Serializer[Any]):
    start = serializers.FloatField()
    end = serializers.FloatField()
    text = serializers.CharField(allow_blank=True)


class Transcription(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    text = serializers.CharField(allow_blank=True)
    language = serializers.CharField(allow_null=True)
    duration = serializers.FloatField(allow_null=True)
    segments = Segment(many=True)
    provider = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    cost = serializers.FloatField()
    error = serializers.CharField(allow_null=True)


class VoiceTurn(serializers.Serializer[Any]):
    transcript = serializers.CharField(allow_blank=True)
    answer = serializers.CharField(allow_blank=True)
    message_id = serializers.IntegerField()
    status = serializers.CharField()
    error = serializers.CharField(allow_null=True)
    audio_url = serializers.CharField(allow_null=True)


class Span(serializers.Serializer[Any]):
    time_range = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    generated_at = serializers.DateTimeField()


class Costs(Span):
    group_by = serializers.CharField()
    total_cost = serializers.FloatField()
    costs = serializers.ListField(child=serializers.DictField())


class Totals(serializers.Serializer[Any]):
    cost = serializers.FloatField()
    requests = serializers.IntegerField()
    tokens = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)


class Performance(Span):
    providers = serializers.ListField(child=serializers.DictField())
    totals = Totals()


class ProviderHealth(serializers.Serializer[Any]):
    provider = serializers.CharField()
    status = serializers.CharField()
    deployments = serializers.ListField(child=serializers.DictField())


class HealthReport(serializers.Serializer[Any]):
    providers = ProviderHealth(many=True)
    generated_at = serializers.DateTimeField()


ERRORS = {
    "400": "The request is malformed or a field is invalid (see error.fields).",
    "401": "No API key, or one that is invalid, expired or revoked.",
    "403": "The key's user may not do this.",
    "404": "No such object among the caller's own.",
    "413": "The upload is larger than its limit.",
    "415": "The body's media type is not accepted.",
    "429": "The caller's budget or rate limit is spent.",
    "502": "The model provider failed.",
    "503": "A provider or the database is unavailable for now; retry shortly.",
    "504": "The model provider timed out.",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "description": "invalid_request, not_found, budget_exceeded, ..."},
                "message": {"type": "string"},
                "fields": {"type": "object", "description": "Per-field messages, on invalid_request."},
            },
        }
    },
}
# Operations that call a model provider, and so can give its errors.
_PROVIDER_CALLS = ("/messages", "/documents/query", "/audio/speech", "/audio/conversation")


def _errors_for(path: str, method: str, operation: JSON) -> set[str]:
    """401, 403 and 503 on every operation; the others where the operation can give them."""
    codes = {"401", "403", "503"}
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add("400")
    if "{" in path or method in {"post", "put", "patch"}:
        codes.add("404")  # a named object (path id, conversation_id field, collection name) not found
    content = operation.get("requestBody", {}).get("content", {})
    if content:
        codes.add("415")
    if "multipart/form-data" in content:
        codes.add("413")
    if method == "post" and path.endswith(_PROVIDER_CALLS):
        codes |= {"429", "502", "504"}
    return codes


def add_error_responses(result: JSON, generator: Any, request: Any, public: bool) -> JSON:
    """drf-spectacular post-processing hook: document the error shape on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in sorted(_errors_for(path, method, operation)):
                responses.setdefault(
                    code, {"description": ERRORS[code], "content": {"application/json": {"schema": reference}}}
                )
    return result
