from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods, require_POST

from assistant_project.http import AuthenticatedHttpRequest

from .forms import ApiKeyForm
from .models import ApiKey


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return TemplateResponse(request, "home.html", {})


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: AuthenticatedHttpRequest) -> HttpResponse:
    new_key: str | None = None
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key, new_key = ApiKey.issue(request.user, form.cleaned_data["name"])
        if form.cleaned_data["expires_at"]:
            key.expires_at = form.cleaned_data["expires_at"]
            key.save(update_fields=["expires_at"])
        form = ApiKeyForm()
    keys = ApiKey.objects.for_user(request.user)
    return TemplateResponse(request, "accounts/api_keys.html", {"form": form, "keys": keys, "new_key": new_key})


@login_required
@require_POST
def revoke_api_key(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.for_user(request.user), pk=key_id)
    key.revoke()
    return redirect("api_keys")
