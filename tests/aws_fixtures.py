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
    session: boto3.Session  # one per test process: loading botocore's service models is the slow part
    region: str = REGION

    def client(self, service: str):
        return self.session.client(service, endpoint_url=self.endpoint_url)

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


def _isolated_session(patch, folder) -> boto3.Session:
    """A Session with fake keys that reads no AWS profile, config or credentials file of the machine."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        patch.delenv(name, raising=False)
    patch.setenv("AWS_CONFIG_FILE", str(folder / "no-aws-config"))
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "no-aws-credentials"))
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    for service in ("s3", "bedrock"):  # loads (and caches) the configuration while the environment is isolated
        session.client(service, endpoint_url="http://127.0.0.1:9")
    return session


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


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """One moto server per test process on 127.0.0.1 and a port the OS picks; stopped at the end."""
    with pytest.MonkeyPatch.context() as patch:
        session = _isolated_session(patch, tmp_path_factory.mktemp("aws"))
    with pytest.MonkeyPatch.context() as patch:
        _decode_job_identifier(patch)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield LocalAWS(endpoint_url=f"http://{host}:{port}", session=session)
        finally:
            server.stop()


@pytest.fixture
def local_aws(moto_server):
    """The local AWS, emptied before and after the test."""
    moto_server.reset()
    try:
        yield moto_server
    finally:
        moto_server.reset()
