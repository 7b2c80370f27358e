"""Blob store: image bytes, thumbnails and artifacts, addressed by key.

``open_store(url)`` picks a backend by the URL's scheme: a plain path or ``file://`` is a local
folder; anything else (``s3://``, ``gcs://``, ``memory://``) goes through fsspec.
"""

from labelwise.storage.base import BlobStore, image_key, open_store

__all__ = ["BlobStore", "image_key", "open_store"]
