from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from .models import ApiKey


@extend_schema(
    responses=inline_serializer(
        "Me",
        {
            "username": serializers.CharField(),
            "is_staff": serializers.BooleanField(),
            "api_key": serializers.CharField(allow_null=True),
        },
    )
)
@api_view(["GET"])
def me(request: Request) -> Response:
    """Who the caller is, and which API key (by name) authenticated the call."""
    key = request.auth if isinstance(request.auth, ApiKey) else None
    return Response(
        {
            "username": request.user.get_username(),
            "is_staff": request.user.is_staff,
            "api_key": key.name if key else None,
        }
    )
