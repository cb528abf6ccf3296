"""The obstore backend against the shared conformance suite (``omniq.testing``), per store kind."""

from __future__ import annotations

from pathlib import Path

import obstore as obs
import pytest

from omniq.backend import Backend
from omniq.testing import BackendConformance
from omniq_obstore import _keys as K
from omniq_obstore.backend import ObjectStoreBackend


class _Corrupting(BackendConformance):
    async def corrupt_task(self, omniq_backend: Backend, task_id: str) -> None:
        assert isinstance(omniq_backend, ObjectStoreBackend)
        key = K.task_key(K.component(task_id), "spec")
        await obs.put_async(omniq_backend.store, key, b"\xc1 not msgpack")
        omniq_backend._s().cache.forget("")


class TestMemoryConformance(_Corrupting):
    @pytest.fixture
    def backend_url(self, omniq_namespace: str) -> str:
        return f"memory://{omniq_namespace}"


class TestFileConformance(_Corrupting):
    @pytest.fixture
    def backend_url(self, tmp_path: Path) -> str:
        return f"file://{tmp_path}/conformance"


class TestS3Conformance(_Corrupting):
    @pytest.fixture
    def backend_url(self, omniq_namespace: str, s3_endpoint: str) -> str:
        return f"s3://omniq-test/{omniq_namespace}?endpoint={s3_endpoint}&region=us-east-1&allow_http=true"
