import importlib.util
import json
import sys
import uuid

import pytest

from tests import services
from workspaces import services as workspace_services
from workspaces.models import ApiKey, Plan


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """A real S3-compatible server (moto in server mode) on 127.0.0.1 for the whole session."""
    services.require("moto", importlib.util.find_spec("moto") is not None, "pip install -r requirements-dev.txt")
    port = services.free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with services.running(cmd, env={}, port=port, log=log):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def bucket(s3_endpoint, settings):
    """A fresh bucket, made the default storage for this test as production configures it."""
    import boto3

    name = f"avtrz-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    client.create_bucket(Bucket=name)
    # Renditions are public (the CDN or browsers fetch them directly); source photos stay private.
    public_avatars = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{name}/avatars/*",
            }
        ],
    }
    client.put_bucket_policy(Bucket=name, Policy=json.dumps(public_avatars))
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "avtrz.lib.storage.ImageStorage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "access_key": "test",
                "secret_key": "test",
                "querystring_auth": False,
            },
        },
    }
    # Durable URLs point at the bucket itself, as they would at a CDN in front of it.
    settings.AVTRZ_IMAGE_BASE_URL = f"{s3_endpoint}/{name}/avatars/"
    client.bucket_name = name
    return client


@pytest.fixture
def pk(acme, alice):
    Plan.objects.filter(code="free").update(requests_per_second=1000)
    return workspace_services.create_api_key(actor=alice, workspace=acme, kind=ApiKey.Kind.PUBLISHABLE, name="Web")
