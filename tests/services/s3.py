"""An S3-compatible server on loopback (moto) and the Spark ``s3a://`` settings to reach it.

``s3_server`` (session fixture) starts ``moto.server.ThreadedMotoServer`` on a free 127.0.0.1
port; ``s3_bucket`` creates a fresh bucket with boto3 and returns its name. :func:`s3a_conf`
gives the Hadoop ``fs.s3a.*`` settings (endpoint, path-style access, no TLS, static "testing"
keys); :func:`use_s3a` applies them to a running session for the duration of a ``with`` block.

Without moto, or without the hadoop-aws jar (``KAMLIB_JARS``), the s3a tests are skipped
locally; when ``CI`` is set they fail instead (CI must really run them).
"""

from __future__ import annotations

import contextlib
import glob
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services.kafka import free_port

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"s3 test server unavailable in CI: {reason}")
    pytest.skip(reason)


def s3a_conf(endpoint: str) -> dict[str, str]:
    """Hadoop S3A settings for the moto server at ``endpoint`` (``http://127.0.0.1:PORT``)."""
    return {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": REGION,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "fs.s3a.access.key": ACCESS_KEY,
        "fs.s3a.secret.key": SECRET_KEY,
        "fs.s3a.impl.disable.cache": "true",
    }


@contextlib.contextmanager
def use_s3a(spark: Any, endpoint: str) -> Iterator[None]:
    """Set :func:`s3a_conf` on ``spark`` (runtime SQL conf reaches the Hadoop conf); unset after."""
    conf = s3a_conf(endpoint)
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key in conf:
            with contextlib.suppress(Exception):
                spark.conf.unset(key)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1; yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        _unavailable("moto[server] is not installed")
    jars = os.path.join(os.environ.get("KAMLIB_JARS", ""), "spark", "hadoop-aws-*.jar")
    if not glob.glob(jars):
        _unavailable("the hadoop-aws jar is not in $KAMLIB_JARS/spark (run `make jars`)")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A new, empty bucket on the moto server."""
    import boto3

    name = f"kamlib-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    client.create_bucket(Bucket=name)
    return name


def list_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix`` in ``bucket``."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys
