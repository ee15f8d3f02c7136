"""A local AWS (moto's server on 127.0.0.1) for tests of the Bedrock provider.

The server runs in this process, so a test can reach moto's Bedrock backend and
move a job along (moto itself never finishes one). Credentials are fake and
given to the boto3 Session directly; no AWS configuration on the machine is read.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote

import boto3
import pytest
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@dataclass
class LocalAWS:
    endpoint_url: str
    region: str = REGION

    def session(self) -> boto3.Session:
        return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region)

    def client(self, service: str):
        return self.session().client(service, endpoint_url=self.endpoint_url)

    def bedrock_job(self, job: str):
        """moto's record of a customization job, by name or ARN (moto's ARNs end in the job name)."""
        backend = get_backend("bedrock")[DEFAULT_ACCOUNT_ID][self.region]
        return backend.model_customization_jobs[job.rsplit("/", 1)[-1]]

    def set_job_status(self, job: str, status: str, *, failure_message: str | None = None) -> None:
        record = self.bedrock_job(job)
        record.status = status
        if failure_message is not None:
            record.failure_message = failure_message

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


def _decode_job_identifier(monkeypatch) -> None:
    """moto 5.2 looks a job up by the raw, still percent-encoded path, so a job ARN is never found.

    Bedrock takes a job name or ARN there; decoding the path first lets moto answer for both.
    """
    from moto.bedrock.responses import BedrockResponse

    for name in ("get_model_customization_job", "stop_model_customization_job"):
        original = getattr(BedrockResponse, name)

        def decoded(self, _original=original):
            self.path = unquote(self.path)
            return _original(self)

        monkeypatch.setattr(BedrockResponse, name, decoded)


@pytest.fixture
def local_aws(monkeypatch, tmp_path):
    """moto's server on 127.0.0.1 and a port the OS picks; stopped and emptied in teardown."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    _decode_job_identifier(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    aws = LocalAWS(endpoint_url=f"http://{host}:{port}")
    aws.reset()
    try:
        yield aws
    finally:
        aws.reset()
        server.stop()
