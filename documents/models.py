"""Collections of documents, their chunks and embeddings (pgvector) for retrieval.

Every lookup starts from the user: ``Collection.objects.readable_by(user)`` (own and shared) for
reading, ``owned_by(user)`` for changing.
"""

from __future__ import annotations

import uuid
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from pgvector.django import HnswIndex, VectorField

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

EMBEDDING_DIMENSIONS = 384


class CollectionQuerySet(models.QuerySet["Collection"]):
    def readable_by(self, user: AbstractBaseUser | AnonymousUser) -> CollectionQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(Q(owner_id=user.pk) | Q(shared=True))

    def owned_by(self, user: AbstractBaseUser | AnonymousUser) -> CollectionQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(owner_id=user.pk)


def default_embedding_group() -> str:
    return str(settings.DOCUMENTS_EMBEDDING_GROUP)


class Collection(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=100)
    embedding_group = models.CharField(max_length=100, default=default_embedding_group)
    chunk_size = models.PositiveIntegerField(default=300, validators=[MinValueValidator(50), MaxValueValidator(2000)])
    chunk_overlap = models.PositiveIntegerField(default=50, validators=[MaxValueValidator(500)])
    shared = models.BooleanField(default=False, help_text="Readable by every user (set by an admin).")
    # Queries read chunks of `index_version`; a re-embedding writes `index_version + 1` and then swaps.
    index_version = models.PositiveIntegerField(default=1)
    building_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CollectionQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_collection_name_per_owner")]

    def __str__(self) -> str:
        return self.name


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    EXTRACTING = "extracting", "Extracting text"
    EMBEDDING = "embedding", "Embedding"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class DocumentKind(models.TextChoices):
    PDF = "pdf", "PDF"
    DOCX = "docx", "Word"
    TXT = "txt", "Text"
    MD = "md", "Markdown"


def stored_name(instance: Document, filename: str) -> str:
    """Uploads are stored under a generated name: the user's filename is never a path."""
    return f"documents/{uuid.uuid4().hex}{PurePath(filename).suffix.lower()[:8]}"


class DocumentQuerySet(models.QuerySet["Document"]):
    def readable_by(self, user: AbstractBaseUser | AnonymousUser) -> DocumentQuerySet:
        return self.filter(collection__in=Collection.objects.readable_by(user))

    def owned_by(self, user: AbstractBaseUser | AnonymousUser) -> DocumentQuerySet:
        return self.filter(collection__in=Collection.objects.owned_by(user))

    def unfinished(self) -> DocumentQuerySet:
        return self.filter(status__in=[DocumentStatus.QUEUED, DocumentStatus.EXTRACTING, DocumentStatus.EMBEDDING])


class Document(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    original_name = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, choices=DocumentKind.choices)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=stored_name, max_length=200)
    status = models.CharField(max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED)
    error = models.TextField(blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["collection", "sha256"], name="unique_document_per_collection")]

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_busy(self) -> bool:
        return self.status in (DocumentStatus.QUEUED, DocumentStatus.EXTRACTING, DocumentStatus.EMBEDDING)

    def as_api(self) -> dict[str, Any]:
        return {
            "document_id": self.pk,
            "name": self.original_name,
            "collection": self.collection.name,
            "type": self.kind,
            "size": self.size,
            "sha256": self.sha256,
            "status": self.status,
            "error": self.error or None,
            "pages": self.page_count,
            "chunks_total": self.chunks_total,
            "chunks_done": self.chunks_done,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    index_version = models.PositiveIntegerField(default=1)
    text = models.TextField()
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    embedding_model = models.CharField(max_length=100)
    search = SearchVectorField(null=True)

    class Meta:
        ordering = ["document_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["document", "index_version", "index"], name="unique_chunk_per_version")
        ]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(fields=["search"], name="chunk_search_gin"),
            models.Index(fields=["collection", "index_version"], name="chunk_collection_version"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.index} v{self.index_version}"
