"""Object-store backend for OmniQ: ``memory://``, ``file:///abs/dir``, ``s3://``, ``gs://``, ``az://``.

Built on obstore. Every record is one object; the only atomic primitive used is create-if-absent
(``put(mode="create")``). Importing this package is cheap: obstore and the backend class are
loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omniq.plugins.specs import BackendSpec

if TYPE_CHECKING:
    from omniq_obstore.backend import ObjectStoreBackend, open_store

__all__ = ["SPEC", "ObjectStoreBackend", "open_store"]

SPEC = BackendSpec(
    target="omniq_obstore.backend:ObjectStoreBackend",
    distribution="omniq-obstore",
    description="Object stores via obstore: in-process memory, local directory, S3, GCS, Azure.",
)


def __getattr__(name: str) -> Any:
    if name == "ObjectStoreBackend":
        from omniq_obstore.backend import ObjectStoreBackend

        return ObjectStoreBackend
    if name == "open_store":
        from omniq_obstore.backend import open_store

        return open_store
    raise AttributeError(name)
