"""The documents API, keeping the original design's client contract."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from assistant_project import api_schema as schema
from assistant_project.api_errors import error_body
from chat.services import chat_groups
from providers import gateway
from providers.models import Deployment, DeploymentMode

from . import services
from .models import Collection, Document
from .views import body_too_large, too_large_message


class QueryIn(serializers.Serializer[Any]):
    query = serializers.CharField(max_length=2000)
    collection = serializers.CharField(max_length=100)
    top_k = serializers.IntegerField(min_value=1, max_value=50, default=5)
    rerank_top_n = serializers.IntegerField(min_value=1, max_value=50, required=False, allow_null=True)
    model = serializers.CharField(max_length=100, required=False)


def _collection_for_upload(request: Request, name: str) -> Collection:
    name = " ".join(name.split())[:100]
    if not name:
        raise ValidationError({"collection": ["Name the collection to upload into."]})
    collection = Collection.objects.owned_by(request.user).filter(name=name).first()
    if collection is not None:
        return collection
    if settings.DOCUMENTS_EMBEDDING_GROUP not in Deployment.objects.group_names(DeploymentMode.EMBEDDING):
        raise ValidationError(
            {"collection": [f"No embedding model {settings.DOCUMENTS_EMBEDDING_GROUP!r} is enabled."]}
        )
    try:
        return Collection.objects.create(owner=request.user, name=name)  # type: ignore[misc]  # authenticated
    except IntegrityError:
        return Collection.objects.owned_by(request.user).get(name=name)


@csrf_exempt
def upload(request: HttpRequest) -> Any:
    """Checks the declared size before DRF (or anything) reads the body."""
    if request.method == "POST" and body_too_large(request):
        from django.http import JsonResponse

        return JsonResponse(error_body("payload_too_large", too_large_message()), status=413)
    return _upload(request)


@extend_schema(
    request=inline_serializer("UploadIn", {"file": serializers.FileField(), "collection": serializers.CharField()}),
    responses={
        202: inline_serializer(
            "UploadOut", {"document_id": serializers.IntegerField(), "status": serializers.CharField()}
        )
    },
)
@api_view(["POST"])
@parser_classes([MultiPartParser])
def _upload(request: Request) -> Response:
    uploaded = request.FILES.get("file")
    if uploaded is None:
        raise ValidationError({"file": ["Send the document as the multipart field 'file'."]})
    collection = _collection_for_upload(request, str(request.POST.get("collection", "")))
    try:
        document = services.upload(collection, uploaded)
    except services.DuplicateDocument as exc:
        return Response(
            {**error_body("duplicate", str(exc)), "document_id": exc.existing.pk}, status=status.HTTP_409_CONFLICT
        )
    except services.UploadRefused as exc:
        raise ValidationError({"file": [str(exc)]}) from None
    return Response({"document_id": document.pk, "status": document.status}, status=status.HTTP_202_ACCEPTED)


# The schema documents the DRF view behind the size check (drf-spectacular reads a view's ``cls``).
upload.cls, upload.initkwargs = _upload.cls, _upload.initkwargs  # type: ignore[attr-defined]


@extend_schema(parameters=[OpenApiParameter("collection", str, required=False)], responses=schema.DocumentList)
@api_view(["GET"])
def documents(request: Request) -> Response:
    found = Document.objects.readable_by(request.user).select_related("collection")
    if request.query_params.get("collection"):
        found = found.filter(collection__name=request.query_params["collection"])
    return Response({"documents": [document.as_api() for document in found[:500]]})


@extend_schema(responses={204: None}, methods=["DELETE"])
@extend_schema(responses=schema.Document, methods=["GET"], operation_id="v1_document_retrieve")
@api_view(["GET", "DELETE"])
def document(request: Request, document_id: int) -> Response:
    if request.method == "DELETE":
        item = get_object_or_404(Document.objects.owned_by(request.user), pk=document_id)
        item.file.delete(save=False)
        item.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
    item = get_object_or_404(Document.objects.readable_by(request.user).select_related("collection"), pk=document_id)
    return Response(item.as_api())


@extend_schema(request=QueryIn, responses=schema.QueryAnswer)
@api_view(["POST"])
def query(request: Request) -> Response:
    data = QueryIn(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    collection = (
        Collection.objects.readable_by(request.user)
        .filter(name=values["collection"])
        .order_by("-owner_id" if False else "id")
    )
    own = collection.filter(owner_id=request.user.pk).first() or collection.first()
    if own is None:
        raise NotFound(f"No collection called {values['collection']!r}.")
    models = chat_groups()
    model = values.get("model") or (models[0] if models else "")
    if model not in models:
        raise ValidationError({"model": [f"There is no chat model called {model!r}."]})
    try:
        result = services.answer(
            [own],
            values["query"],
            user_id=request.user.pk,
            model_group=model,
            top_k=values["top_k"],
            rerank_top_n=values.get("rerank_top_n"),
        )
    except gateway.GatewayError as exc:
        code = exc.status if exc.status in (429, 503, 504) else 502  # over budget: 429, as the chat API
        return Response(error_body(exc.kind if code == 429 else "provider_error", exc.message), status=code)
    return Response(
        {
            "answer": result.text,
            "sources": [
                {
                    "content": p.text,
                    "document": p.document,
                    "document_id": p.document_id,
                    "page": p.page,
                    "score": p.score,
                    "cited": number in result.cited,
                }
                for number, p in enumerate(result.sources, start=1)
            ],
            "query": values["query"],
            "model_used": result.model_used,
            "context_chunks": len(result.sources),
        }
    )
