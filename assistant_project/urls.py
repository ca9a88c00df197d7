from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from analytics import api as analytics_api
from analytics import views as analytics_views
from assistant_project.accounts import api as account_api
from assistant_project.accounts import views as account_views
from assistant_project.accounts.forms import LimitedAdminAuthenticationForm, LimitedAuthenticationForm
from audio import api as audio_api
from chat import api as chat_api
from documents import api as documents_api
from providers import openai_compat

from . import health

admin.site.login_form = LimitedAdminAuthenticationForm

handler400 = "assistant_project.api_errors.handler400"
handler403 = "assistant_project.api_errors.handler403"
handler404 = "assistant_project.api_errors.handler404"
handler500 = "assistant_project.api_errors.handler500"

urlpatterns = [
    path("", account_views.home, name="home"),
    path("health", health.health, name="health"),
    path("accounts/login/", auth_views.LoginView.as_view(authentication_form=LimitedAuthenticationForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/api-keys/", account_views.api_keys, name="api_keys"),
    path("accounts/api-keys/<int:key_id>/revoke/", account_views.revoke_api_key, name="revoke_api_key"),
    path("admin/", admin.site.urls),
    path("chat/", include("chat.urls")),
    path("documents/", include("documents.urls")),
    path("audio/", include("audio.urls")),
    path("analytics/", include("analytics.urls")),
    path("metrics", analytics_views.prometheus, name="metrics"),
    path("api/v1/me", account_api.me, name="api-me"),
    path("api/v1/chat/conversations", chat_api.conversations, name="api-chat-conversations"),
    path("api/v1/chat/conversations/<int:conversation_id>", chat_api.conversation, name="api-chat-conversation"),
    path("api/v1/chat/conversations/<int:conversation_id>/messages", chat_api.messages, name="api-chat-messages"),
    path(
        "api/v1/chat/conversations/<int:conversation_id>/messages/stream",
        chat_api.stream_messages,
        name="api-chat-stream",
    ),
    path("api/v1/documents/upload", documents_api.upload, name="api-documents-upload"),
    path("api/v1/documents/query", documents_api.query, name="api-documents-query"),
    path("api/v1/documents", documents_api.documents, name="api-documents"),
    path("api/v1/documents/<int:document_id>", documents_api.document, name="api-document"),
    path("api/v1/audio/transcriptions", audio_api.transcriptions, name="api-audio-transcriptions"),
    path("api/v1/audio/transcriptions/<int:transcription_id>", audio_api.transcription, name="api-audio-transcription"),
    path("api/v1/audio/speech", audio_api.speech, name="api-audio-speech"),
    path("api/v1/audio/conversation", audio_api.conversation, name="api-audio-conversation"),
    path("api/v1/analytics/costs", analytics_api.costs, name="api-analytics-costs"),
    path("api/v1/analytics/performance", analytics_api.performance, name="api-analytics-performance"),
    path("api/v1/analytics/provider-health", analytics_api.provider_health, name="api-analytics-health"),
    path("v1/models", openai_compat.models, name="openai-models"),
    path("v1/chat/completions", openai_compat.chat_completions, name="openai-chat"),
    path("v1/embeddings", openai_compat.embeddings, name="openai-embeddings"),
    path("v1/audio/transcriptions", openai_compat.transcriptions, name="openai-transcriptions"),
    path("v1/audio/speech", openai_compat.speech, name="openai-speech"),
    path("v1/rerank", openai_compat.rerank, name="openai-rerank"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
