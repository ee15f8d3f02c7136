"""A dataset version launched on Bedrock (moto's server on 127.0.0.1), watched to the end, and cancelled."""

import pytest

from core.data import datasets, feedback
from core.platform.actors import cli_actor
from core.providers.bedrock.provider import BedrockProvider
from core.training import jobs
from core.vocabulary import JobState, Provider
from tests.aws_fixtures import local_aws, moto_server  # noqa: F401 - fixtures
from tests.conftest import make_settings, svc
from tests.feedback_samples import make_events

MODEL = "amazon.nova-micro-v1:0"
BUCKET = "finetune-data"


@pytest.fixture
def bedrock(tmp_path, local_aws):  # noqa: F811 - the fixture imported above
    local_aws.client("s3").create_bucket(Bucket=BUCKET)
    settings = make_settings(
        tmp_path, bedrock_bucket=f"{BUCKET}/team", bedrock_role_arn="arn:aws:iam::123456789012:role/Bedrock",
        aws_endpoint_url=local_aws.endpoint_url, aws_region=local_aws.region, auto_approve_usd=1000,
    )  # fmt: skip
    registry = {Provider.BEDROCK: lambda s: BedrockProvider(s, session=local_aws.session)}
    return settings, registry


def test_launch_watch_and_finish_on_bedrock(store, bedrock, local_aws):  # noqa: F811
    settings, registry = bedrock
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    version = datasets.build_dataset(store, name="support", actor=cli_actor())
    result = jobs.launch_job(svc(store, settings, registry), dataset_version=version.id, provider="bedrock", base_model=MODEL, actor=cli_actor(),
        hyperparameters={"epochs": 2},
    )  # fmt: skip
    job = result.job
    assert job.provider_job_id and job.status in (JobState.VALIDATING, JobState.RUNNING)
    keys = [o["Key"] for o in local_aws.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert f"team/jobs/{job.id}/train.jsonl" in keys
    record = local_aws.bedrock_job(job.provider_job_id)
    assert record.hyper_parameters["epochCount"] == "2"

    local_aws.set_job_status(job.provider_job_id, "Completed")
    done = jobs.poll_job(svc(store, settings, registry), job.id)
    assert done.status is JobState.SUCCEEDED and done.model_id
    assert store.scalar("SELECT provider_model_id FROM model_versions WHERE job_id = ?", (job.id,)) == done.model_id


def test_cancel_on_bedrock(store, bedrock, local_aws):  # noqa: F811
    settings, registry = bedrock
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    version = datasets.build_dataset(store, name="support", actor=cli_actor())
    job = jobs.launch_job(
        svc(store, settings, registry),
        dataset_version=version.id,
        provider="bedrock",
        base_model=MODEL,
        actor=cli_actor(),
    ).job
    cancelled = jobs.cancel_job(svc(store, settings, registry), job_id=job.id, actor=cli_actor())
    assert cancelled.status in (
        JobState.CANCELLED,
        JobState.RUNNING,
    )  # Stopping is still active until Bedrock says Stopped
    local_aws.set_job_status(job.provider_job_id, "Stopped")
    assert jobs.poll_job(svc(store, settings, registry), job.id).status is JobState.CANCELLED
