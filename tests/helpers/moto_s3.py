"""A local S3 for tests: moto's server mode on 127.0.0.1, shared by the packages' conftests.

Without ``moto[server]`` the S3 tests are skipped, unless ``OMNIQ_TEST_REQUIRE_SERVICES=1`` (CI),
which makes a missing server a failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import pytest

__all__ = ["S3_ENV", "moto_s3"]

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Credentials moto accepts; set in ``os.environ`` while the server runs."""


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """Run a moto S3 server holding ``bucket``; yield its endpoint ``http://127.0.0.1:PORT``.

    Raises:
        pytest.skip.Exception / pytest.fail.Exception: moto is not installed (see module doc).
    """
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        if os.environ.get("OMNIQ_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"moto[server] is required for the S3 tests: {exc}")
        pytest.skip(f"moto[server] not installed ({exc}); S3 tests skipped")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
