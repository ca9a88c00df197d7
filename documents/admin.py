from django.contrib import admin

from .models import Collection, Document


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin[Collection]):
    list_display = ["name", "owner", "embedding_group", "shared", "index_version", "created_at"]
    list_editable = ["shared"]
    list_filter = ["shared", "embedding_group"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["index_version", "building_version", "created_at"]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin[Document]):
    list_display = [
        "original_name",
        "collection",
        "kind",
        "size",
        "status",
        "chunks_done",
        "chunks_total",
        "created_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["original_name", "collection__name"]
    readonly_fields = [f.name for f in Document._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False  # documents come in through uploads, which check and ingest them
