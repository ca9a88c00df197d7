"""URLs used only by the API-error tests: a view that crashes, and a POST-only view."""

from typing import NoReturn

from django.urls import include, path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from assistant_project import urls as project_urls


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request: Request) -> NoReturn:
    raise RuntimeError("boom")


@api_view(["POST"])
@permission_classes([AllowAny])
def post_only(request: Request) -> Response:
    return Response({"ok": True})


urlpatterns = [
    path("api/v1/test/crash", crash),
    path("api/v1/test/post-only", post_only),
    path("", include(project_urls)),
]
handler404 = project_urls.handler404
handler500 = project_urls.handler500
