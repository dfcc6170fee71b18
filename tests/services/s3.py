"""An S3-compatible server on loopback (``moto``) for the object-store tests, and its fixtures.

``s3_service`` (session scope) starts ``moto.server.ThreadedMotoServer`` on a free
``127.0.0.1`` port; :meth:`S3Server.create_bucket` makes a fresh bucket with ``boto3``.
``s3a`` configures the session's ``s3a://`` file system for that server and yields a fresh
bucket: Spark 4 copies runtime SQL conf entries into the Hadoop configuration of every
DataFrame read / write and streaming checkpoint (``sessionState.newHadoopConf()``), so
``spark.conf.set("fs.s3a.endpoint", ...)`` on a live session is enough (no restart). A new
process gets the same settings with :func:`s3a_spark_conf` (``spark.hadoop.`` keys, e.g.
``--conf`` pairs in ``PYSPARK_SUBMIT_ARGS``).

Without moto / boto3 or the ``hadoop-aws`` jar in ``$KAMLIB_JARS/spark`` the tests are
skipped locally; when ``CI`` is set they fail instead (CI must really run them).
"""

from __future__ import annotations

import glob
import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tests.services.kafka import free_port

#: moto accepts any key pair; these never leave the loopback server.
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


class S3UnavailableError(RuntimeError):
    """The S3 server could not be set up (moto, boto3 or the hadoop-aws jar missing)."""


def s3a_hadoop_conf(endpoint: str) -> dict[str, str]:
    """Hadoop ``fs.s3a.*`` settings for a path-style, plain-HTTP server at ``endpoint``."""
    return {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": REGION,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": ACCESS_KEY,
        "fs.s3a.secret.key": SECRET_KEY,
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        # small test objects: no multipart, few retries against a local server
        "fs.s3a.attempts.maximum": "3",
        "fs.s3a.retry.limit": "3",
    }


def s3a_spark_conf(endpoint: str) -> dict[str, str]:
    """:func:`s3a_hadoop_conf` as Spark settings (``spark.hadoop.`` prefix) for a new session."""
    return {f"spark.hadoop.{key}": value for key, value in s3a_hadoop_conf(endpoint).items()}


def hadoop_aws_jars(jars_dir: str | None = None) -> list[str]:
    """The ``hadoop-aws`` jar(s) in ``<KAMLIB_JARS>/spark`` (empty when not fetched)."""
    folder = jars_dir if jars_dir is not None else os.environ.get("KAMLIB_JARS", "")
    if not folder:
        return []
    return sorted(glob.glob(os.path.join(folder, "spark", "hadoop-aws-*.jar")))


class S3Server:
    """A running moto S3 server on ``127.0.0.1`` (``endpoint`` is ``http://127.0.0.1:<port>``)."""

    def __init__(self) -> None:
        try:
            import boto3  # noqa: F401
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise S3UnavailableError(f"moto[server] / boto3 not installed ({exc})") from None
        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        """A ``boto3`` S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name by default) and return its name."""
        bucket = name or f"kamlib-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key of ``bucket`` under ``prefix``."""
        paginator = self.client().get_paginator("list_objects_v2")
        out: list[str] = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            out.extend(item["Key"] for item in page.get("Contents", []))
        return out

    def hadoop_conf(self) -> dict[str, str]:
        """``fs.s3a.*`` settings for this server."""
        return s3a_hadoop_conf(self.endpoint)

    def stop(self) -> None:
        """Stop the server (objects live in memory: nothing to delete)."""
        self._server.stop()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"S3 server required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def s3_service() -> Iterator[S3Server]:
    """The session's moto S3 server (skipped locally without moto or the hadoop-aws jar)."""
    if not hadoop_aws_jars():
        _unavailable(
            "no hadoop-aws jar in $KAMLIB_JARS/spark (run `make jars`; s3a:// needs hadoop-aws)"
        )
    try:
        server = S3Server()
    except S3UnavailableError as exc:
        _unavailable(str(exc))
        raise  # pragma: no cover - _unavailable never returns
    try:
        yield server
    finally:
        server.stop()


class S3Bucket:
    """A fresh bucket on the session's S3 server, with ``uri(path)`` -> ``s3a://bucket/path``."""

    def __init__(self, server: S3Server, name: str) -> None:
        self.server = server
        self.name = name

    def uri(self, path: str = "") -> str:
        return f"s3a://{self.name}/{path.lstrip('/')}"

    def keys(self, prefix: str = "") -> list[str]:
        return self.server.keys(self.name, prefix)


@pytest.fixture
def s3a(spark: Any, s3_service: S3Server) -> S3Bucket:
    """Point the session's ``s3a://`` file system at the S3 server; a fresh bucket per test."""
    from tests.services import s3a_on_classpath

    for key, value in s3_service.hadoop_conf().items():
        spark.conf.set(key, value)
    bucket = S3Bucket(s3_service, s3_service.create_bucket())
    if not s3a_on_classpath(spark, bucket.uri("kamlib-probe")):
        _unavailable("the s3a file system (hadoop-aws) is not on this session's classpath")
    return bucket


__all__: Sequence[str] = [
    "S3Bucket",
    "S3Server",
    "hadoop_aws_jars",
    "s3_service",
    "s3a",
    "s3a_hadoop_conf",
    "s3a_spark_conf",
]
