from django.urls import path

from . import views

app_name = "documents"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:collection_id>/", views.detail, name="detail"),
    path("<int:collection_id>/status", views.status, name="status"),
    path("<int:collection_id>/upload", views.upload, name="upload"),
    path("<int:collection_id>/ask", views.ask, name="ask"),
    path("<int:collection_id>/embedding-model", views.change_model, name="change_model"),
    path("<int:collection_id>/documents/<int:document_id>/delete", views.delete_document, name="delete"),
]
