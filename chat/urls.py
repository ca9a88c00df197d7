from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("new", views.new_conversation, name="new"),
    path("<int:conversation_id>/", views.detail, name="detail"),
    path("<int:conversation_id>/send", views.send, name="send"),
    path("<int:conversation_id>/regenerate", views.regenerate, name="regenerate"),
    path("<int:conversation_id>/rename", views.rename, name="rename"),
    path("<int:conversation_id>/delete", views.delete, name="delete"),
    path("<int:conversation_id>/settings", views.update_settings, name="settings"),
    path("<int:conversation_id>/export.<str:fmt>", views.export, name="export"),
    path("<int:conversation_id>/messages/<int:message_id>/edit", views.edit_message, name="edit"),
    path("<int:conversation_id>/messages/<int:message_id>/stop", views.stop_message, name="stop"),
    path("<int:conversation_id>/messages/<int:message_id>/stream", views.stream_message, name="stream"),
]
