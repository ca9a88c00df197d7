"""The documents pages: collections, uploads with live ingestion status, questions with citations.
Reading starts from ``readable_by(user)`` (own and shared collections), changing from
``owned_by(user)``; anything else is a 404."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from assistant_project.http import AuthenticatedHttpRequest
from chat.services import chat_groups
from providers import gateway
from providers.models import Deployment, DeploymentMode

from . import services
from .models import Collection


def body_too_large(request: HttpRequest) -> bool:
    """Refuse an upload by its declared length, before its body is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > settings.DOCUMENT_MAX_BYTES * settings.DOCUMENT_MAX_FILES + 64 * 1024


def too_large_message() -> str:
    return f"The upload is too large: each file may be at most {filesizeformat(settings.DOCUMENT_MAX_BYTES)}."


@login_required
@require_http_methods(["GET", "POST"])
def index(request: AuthenticatedHttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        name = " ".join(request.POST.get("name", "").split())[:100]
        group = request.POST.get("embedding_group") or settings.DOCUMENTS_EMBEDDING_GROUP
        if not name:
            error = "Name the collection."
        elif group not in Deployment.objects.group_names(DeploymentMode.EMBEDDING):
            error = f"There is no embedding model called {group!r}."
        else:
            try:
                collection = Collection.objects.create(owner=request.user, name=name, embedding_group=group)
            except IntegrityError:
                error = f"You already have a collection called {name!r}."
            else:
                return redirect("documents:detail", collection.pk)
    context = {
        "collections": Collection.objects.readable_by(request.user)
        .select_related("owner")
        .annotate(document_count=Count("documents")),
        "embedding_groups": Deployment.objects.group_names(DeploymentMode.EMBEDDING),
        "default_group": settings.DOCUMENTS_EMBEDDING_GROUP,
        "error": error,
    }
    return TemplateResponse(request, "documents/index.html", context, status=400 if error else 200)


def _page_context(request: AuthenticatedHttpRequest, collection: Collection) -> dict[str, object]:
    return {
        "collection": collection,
        "documents": list(collection.documents.all()),
        "can_edit": collection.owner_id == request.user.pk,
        "chat_models": chat_groups(),
        "max_size": filesizeformat(settings.DOCUMENT_MAX_BYTES),
    }


@login_required
@require_GET
def detail(request: AuthenticatedHttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(Collection.objects.readable_by(request.user), pk=collection_id)
    return TemplateResponse(request, "documents/detail.html", _page_context(request, collection))


@login_required
@require_GET
def status(request: AuthenticatedHttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(Collection.objects.readable_by(request.user), pk=collection_id)
    return TemplateResponse(request, "documents/_documents.html", _page_context(request, collection))


@csrf_exempt  # the CSRF check runs below, after the size check, so an oversized body is never read
@login_required
@require_POST
def upload(request: AuthenticatedHttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(Collection.objects.owned_by(request.user), pk=collection_id)
    if body_too_large(request):
        return HttpResponse(too_large_message(), status=413, content_type="text/plain; charset=utf-8")
    return _upload(request, collection)


@csrf_protect
def _upload(request: AuthenticatedHttpRequest, collection: Collection) -> HttpResponse:
    files = request.FILES.getlist("files")
    if not files:
        messages.error(request, "Choose one or more files to upload.")
    for uploaded in files[: settings.DOCUMENT_MAX_FILES]:
        try:
            document = services.upload(collection, uploaded)
        except services.UploadRefused as exc:
            messages.error(request, f"{services.clean_filename(uploaded.name or '')}: {exc}")
        else:
            messages.success(request, f"{document.original_name}: queued for processing.")
    if len(files) > settings.DOCUMENT_MAX_FILES:
        messages.error(request, f"Only {settings.DOCUMENT_MAX_FILES} files at a time; the rest were not uploaded.")
    return redirect("documents:detail", collection.pk)


@login_required
@require_POST
def delete_document(request: AuthenticatedHttpRequest, collection_id: int, document_id: int) -> HttpResponse:
    collection = get_object_or_404(Collection.objects.owned_by(request.user), pk=collection_id)
    document = get_object_or_404(collection.documents, pk=document_id)
    document.file.delete(save=False)
    document.delete()
    messages.success(request, f"{document.original_name} was deleted.")
    return redirect("documents:detail", collection.pk)


@login_required
@require_POST
def ask(request: AuthenticatedHttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(Collection.objects.readable_by(request.user), pk=collection_id)
    context = _page_context(request, collection)
    query = request.POST.get("query", "").strip()[:2000]
    model = request.POST.get("model") or (context["chat_models"] or [""])[0]  # type: ignore[index]
    context.update({"query": query, "model": model})
    if not query:
        context["ask_error"] = "Type a question first."
    elif model not in chat_groups():
        context["ask_error"] = f"There is no chat model called {model!r}."
    else:
        try:
            context["answer"] = services.answer(
                [collection], query, user_id=request.user.pk, model_group=str(model), top_k=5
            )
        except gateway.GatewayError as exc:
            context["ask_error"] = exc.message
    template = "documents/_answer.html" if request.htmx else "documents/detail.html"
    return TemplateResponse(request, template, context)


@login_required
@require_POST
def change_model(request: AuthenticatedHttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(Collection.objects.owned_by(request.user), pk=collection_id)
    group = request.POST.get("embedding_group", "")
    if group not in Deployment.objects.group_names(DeploymentMode.EMBEDDING):
        messages.error(request, f"There is no embedding model called {group!r}.")
    elif group != collection.embedding_group:
        services.change_embedding_model(collection, group)
        messages.success(request, f"Re-embedding with {group}; answers use the current index until it is done.")
    return redirect("documents:detail", collection.pk)
