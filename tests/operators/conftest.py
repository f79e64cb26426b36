"""Fixtures of the operator tests: an S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

from tests.support import AWS_CONN_ID, BUCKET, S3Server

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 on an ephemeral port, reachable through the Airflow connection ``aws_test``."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    os.environ[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"},
        }
    )
    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield S3Server(endpoint_url=endpoint_url, client=client)
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}", None)
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The S3 server with an empty bucket."""
    s3_server.empty()
    yield s3_server
    s3_server.empty()
