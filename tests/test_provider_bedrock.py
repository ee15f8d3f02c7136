"""The Bedrock provider against moto's server on 127.0.0.1, and botocore's Stubber for error replies.

moto (5.2) does not honour clientRequestToken: a second create with the same
job name is answered ResourceInUseException. The provider then finds the job by
name and reuses it when its token matches, so the idempotency test holds on
moto and on Bedrock alike. moto also never reports statusDetails; the
refinement of InProgress is tested with stubbed replies.
"""

from __future__ import annotations

import datetime as dt
import json

import botocore.session
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from core.providers import build_provider
from core.providers.base import LaunchRequest, ProviderError, ProviderNotConfigured, ProviderRefused
from core.providers.bedrock.provider import (
    JOB_TAG,
    BedrockProvider,
    aws_error,
    bedrock_name,
    client_request_token,
)
from core.vocabulary import JobState, values
from tests.aws_fixtures import local_aws, moto_server  # noqa: F401 - fixtures
from tests.conftest import make_settings

BUCKET = "finetune-data"
ROLE = "arn:aws:iam::123456789012:role/BedrockFineTuning"
NOVA = "amazon.nova-micro-v1:0"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
MODEL_ARN = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abcdefghijkl"
STEP_CSV = "step_number,epoch_number,training_loss,perplexity\n0,0,2.5,12.18\n1,0,1.75,5.75\n2,1,1.25,3.49\n"
VALIDATION_CSV = "step_number,epoch_number,validation_loss,perplexity\n2,1,1.5,4.48\n"


@pytest.fixture
def aws(local_aws):  # noqa: F811 - the fixture imported above
    local_aws.client("s3").create_bucket(Bucket=BUCKET)
    return local_aws


def make_provider(tmp_path, aws, *, bucket: str = f"{BUCKET}/team-a", **overrides) -> BedrockProvider:
    settings = make_settings(
        tmp_path, bedrock_bucket=bucket, bedrock_role_arn=ROLE, aws_endpoint_url=aws.endpoint_url, **overrides
    )
    return BedrockProvider(settings, session=aws.session)


@pytest.fixture
def provider(tmp_path, aws) -> BedrockProvider:
    return make_provider(tmp_path, aws)


@pytest.fixture
def files(tmp_path):
    train, validation = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    train.write_text(json.dumps({"schemaVersion": "bedrock-conversation-2024", "messages": []}) + "\n")
    validation.write_text(json.dumps({"schemaVersion": "bedrock-conversation-2024", "messages": []}) + "\n")
    return train, validation


def request(files, *, job_id: str = "job_0123456789ab", key: str | None = None, **fields) -> LaunchRequest:
    train, validation = files
    values = {
        "job_id": job_id, "idempotency_key": key or job_id, "base_model": NOVA, "method": "supervised",
        "hyperparameters": {"epochs": 2, "learning_rate": 1e-05, "warmup_steps": 10},
        "train_file": train, "validation_file": validation, "suffix": "support-v3",
    }  # fmt: skip
    return LaunchRequest(**{**values, **fields})


def test_registered_under_bedrock(tmp_path, aws):
    settings = make_settings(tmp_path, bedrock_bucket=BUCKET, bedrock_role_arn=ROLE, aws_endpoint_url=aws.endpoint_url)
    assert isinstance(build_provider("bedrock", settings), BedrockProvider)


def test_status_map_covers_every_documented_status():
    documented = botocore.session.get_session().get_service_model("bedrock")  # the SDK's copy of the API model
    statuses = set(documented.shape_for("ModelCustomizationJobStatus").enum)
    assert statuses == {"InProgress", "Completed", "Failed", "Stopping", "Stopped"}
    assert set(BedrockProvider.STATUS_MAP) == statuses
    assert set(BedrockProvider.STATUS_MAP.values()) <= set(values(JobState))


@pytest.mark.parametrize(
    ("variable", "overrides"),
    [
        ("FINETUNE_BEDROCK_BUCKET", {"bedrock_role_arn": ROLE}),
        ("FINETUNE_BEDROCK_ROLE_ARN", {"bedrock_bucket": BUCKET}),
        ("FINETUNE_BEDROCK_BUCKET", {"bedrock_bucket": "Not A Bucket", "bedrock_role_arn": ROLE}),
        ("FINETUNE_BEDROCK_ROLE_ARN", {"bedrock_bucket": BUCKET, "bedrock_role_arn": "BedrockFineTuning"}),
    ],
)
def test_missing_or_malformed_settings_name_the_variable(tmp_path, variable, overrides):
    with pytest.raises(ProviderNotConfigured) as raised:
        BedrockProvider(make_settings(tmp_path, **overrides))
    assert variable in str(raised.value)
    assert raised.value.hint


def test_launch_uploads_files_and_creates_job(provider, aws, files):
    job = provider.launch(request(files))

    keys = {o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    folder = "team-a/jobs/job_0123456789ab"
    assert keys == {f"{folder}/train.jsonl", f"{folder}/validation.jsonl"}
    body = aws.client("s3").get_object(Bucket=BUCKET, Key=f"{folder}/train.jsonl")["Body"].read()
    assert body == files[0].read_bytes()

    assert job.provider_job_id.endswith("/finetune-ops-job-0123456789ab")
    assert (job.status, job.provider_status) == ("validating", "InProgress")
    created = aws.client("bedrock").get_model_customization_job(jobIdentifier="finetune-ops-job-0123456789ab")
    assert created["hyperParameters"] == {"epochCount": "2", "learningRate": "0.00001", "learningRateWarmupSteps": "10"}
    assert created["baseModelArn"].endswith("foundation-model/amazon.nova-micro-v1:0:128k")
    assert created["customizationType"] == "FINE_TUNING"
    assert created["roleArn"] == ROLE
    assert created["trainingDataConfig"] == {"s3Uri": f"s3://{BUCKET}/{folder}/train.jsonl"}
    assert created["validationDataConfig"] == {"validators": [{"s3Uri": f"s3://{BUCKET}/{folder}/validation.jsonl"}]}
    assert created["outputDataConfig"] == {"s3Uri": f"s3://{BUCKET}/{folder}/output/"}
    assert created["outputModelName"].startswith("support-v3-job-0123456789ab")
    assert created["clientRequestToken"] == client_request_token("job_0123456789ab")
    tags = aws.client("bedrock").list_tags_for_resource(resourceARN=job.provider_job_id)["tags"]
    assert {"key": JOB_TAG, "value": "job_0123456789ab"} in tags


def test_launch_accepts_the_customization_id_and_unknown_models(tmp_path, aws, files):
    provider = make_provider(tmp_path, aws, bucket=f"s3://{BUCKET}/")
    provider.launch(request(files, job_id="job_a", base_model="amazon.nova-micro-v1:0:128k", validation_file=None))
    other = request(files, job_id="job_b", base_model="example.custom-base-v1:0", hyperparameters={"epochs": 3.0})
    provider.launch(other)

    bedrock = aws.client("bedrock")
    first = bedrock.get_model_customization_job(jobIdentifier="finetune-ops-job-a")
    assert first["baseModelArn"].endswith("/amazon.nova-micro-v1:0:128k")
    assert first["trainingDataConfig"]["s3Uri"] == f"s3://{BUCKET}/jobs/job_a/train.jsonl"
    assert "validationDataConfig" not in first
    second = bedrock.get_model_customization_job(jobIdentifier="finetune-ops-job-b")
    assert second["baseModelArn"].endswith("/example.custom-base-v1:0")
    assert second["hyperParameters"] == {"epochCount": "3"}


def test_launching_twice_with_one_key_makes_one_job(provider, aws, files):
    first = provider.launch(request(files))
    aws.set_job_status(first.provider_job_id, "Completed")
    again = provider.launch(request(files))

    assert again.provider_job_id == first.provider_job_id
    assert again.status == "succeeded"  # the existing job's real state, not a fresh one
    jobs = aws.client("bedrock").list_model_customization_jobs()["modelCustomizationJobSummaries"]
    assert len(jobs) == 1


def test_same_job_with_another_key_is_a_clash_not_a_reuse(provider, files):
    provider.launch(request(files))
    with pytest.raises(ProviderError) as raised:
        provider.launch(request(files, key="a-different-launch"))
    assert not raised.value.transient
    assert "ResourceInUseException" in str(raised.value)
    assert raised.value.request_id


def test_names_and_tokens_follow_bedrock_rules():
    assert bedrock_name("finetune-ops-job_0123__ab") == "finetune-ops-job-0123-ab"
    long = bedrock_name("finetune-ops-" + "x" * 80)
    assert len(long) == 63 and long != bedrock_name("finetune-ops-" + "x" * 81)
    assert client_request_token("job-0123") == "job-0123"
    token = client_request_token("job_0123")
    assert token == client_request_token("job_0123") and len(token) == 64 and token.isalnum()


def test_hyperparameters_are_plain_decimal_strings_under_bedrock_names(provider, aws, files):
    values = {"epochs": 3.0, "batch_size": 1, "learning_rate": 5e-06}
    provider.launch(request(files, base_model="meta.llama3-1-8b-instruct-v1:0", hyperparameters=values))
    created = aws.client("bedrock").get_model_customization_job(jobIdentifier="finetune-ops-job-0123456789ab")
    assert created["hyperParameters"] == {"epochCount": "3", "batchSize": "1", "learningRate": "0.000005"}


def test_a_hyperparameter_the_model_lacks_is_refused_before_upload(provider, aws, files):
    with pytest.raises(ProviderError, match="batch_size") as raised:
        provider.launch(request(files, hyperparameters={"batch_size": 8}))
    assert "epochs" in (raised.value.hint or "")
    assert "Contents" not in aws.client("s3").list_objects_v2(Bucket=BUCKET)


def test_dpo_is_refused(provider, files):
    with pytest.raises(ProviderError, match="supervised"):
        provider.launch(request(files, method="dpo"))


def test_legacy_claude_haiku_launches_with_a_note(provider, aws, files):
    values = {"epochs": 2, "batch_size": 32, "learning_rate_multiplier": 1.0}
    job = provider.launch(request(files, base_model=HAIKU, hyperparameters=values))
    assert "legacy" in job.detail
    created = aws.client("bedrock").get_model_customization_job(jobIdentifier="finetune-ops-job-0123456789ab")
    assert created["hyperParameters"] == {"epochCount": "2", "batchSize": "32", "learningRateMultiplier": "1"}


def test_missing_bucket_names_the_setting(tmp_path, local_aws, files):  # noqa: F811 - fixture
    provider = make_provider(tmp_path, local_aws, bucket="no-such-bucket")
    with pytest.raises(ProviderNotConfigured, match="NoSuchBucket") as raised:
        provider.launch(request(files))
    assert "FINETUNE_BEDROCK_BUCKET" in (raised.value.hint or "")


@pytest.mark.parametrize(
    ("provider_status", "status"),
    [("InProgress", "running"), ("Stopping", "running"), ("Completed", "succeeded"), ("Failed", "failed"),
     ("Stopped", "cancelled")],
)  # fmt: skip
def test_poll_maps_bedrock_status(provider, aws, files, provider_status, status):
    arn = provider.launch(request(files)).provider_job_id
    aws.set_job_status(arn, provider_status, failure_message="Data validation failed: line 3 is not JSON.")

    job = provider.poll(arn)
    assert (job.provider_job_id, job.status, job.provider_status) == (arn, status, provider_status)
    if provider_status == "Completed":
        assert job.model_id == aws.bedrock_job(arn).output_model_arn
        assert job.metrics["train_loss"] == 0.0 and "valid_loss" in job.metrics
    else:
        assert job.model_id is None
    expected_error = "Data validation failed: line 3 is not JSON." if provider_status == "Failed" else None
    assert job.error == expected_error


def test_poll_of_an_unknown_job_is_a_final_error(provider):
    with pytest.raises(ProviderError, match="ResourceNotFoundException") as raised:
        provider.poll("finetune-ops-job-missing")
    assert not raised.value.transient


def _stubbed_job(status: str = "InProgress", **fields) -> dict:
    return {
        "jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/amazon.nova-micro-v1:0:128k/abcdefghijkl",
        "jobName": "finetune-ops-job-1", "outputModelName": "m", "roleArn": ROLE, "status": status,
        "creationTime": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "baseModelArn": "arn:aws:bedrock:::x",
        "trainingDataConfig": {"s3Uri": "s3://b/t"}, "validationDataConfig": {"validators": []},
        "outputDataConfig": {"s3Uri": "s3://b/o/"}, **fields,
    }  # fmt: skip


def _details(validation: str, processing: str, training: str) -> dict:
    return {
        "validationDetails": {"status": validation},
        "dataProcessingDetails": {"status": processing},
        "trainingDetails": {"status": training},
    }


@pytest.mark.parametrize(
    ("details", "status"),
    [
        (_details("InProgress", "NotStarted", "NotStarted"), "validating"),
        (_details("Completed", "InProgress", "NotStarted"), "queued"),
        (_details("Completed", "Completed", "InProgress"), "running"),
        (_details("Completed", "Completed", "Completed"), "running"),
        (None, "running"),
    ],
)
def test_poll_refines_in_progress_from_status_details(provider, details, status):
    reply = _stubbed_job(**({"statusDetails": details} if details else {}))
    with Stubber(provider.bedrock) as stub:
        stub.add_response("get_model_customization_job", reply, {"jobIdentifier": "finetune-ops-job-1"})
        job = provider.poll("finetune-ops-job-1")
    assert (job.status, job.provider_status) == (status, "InProgress")
    if details:
        assert job.detail.startswith("validation ") and "data processing" in job.detail and "training" in job.detail


def test_events_read_step_wise_metrics_from_the_output_prefix(provider, aws, files):
    arn = provider.launch(request(files)).provider_job_id
    assert provider.events(arn) == []

    output = "team-a/jobs/job_0123456789ab/output/model-customization-job-abcdefghijkl"
    s3 = aws.client("s3")
    s3.put_object(Bucket=BUCKET, Key=f"{output}/training_artifacts/step_wise_training_metrics.csv", Body=STEP_CSV)
    validation_key = f"{output}/validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv"
    s3.put_object(Bucket=BUCKET, Key=validation_key, Body=VALIDATION_CSV)

    events = provider.events(arn)
    assert [e.id for e in events] == ["step-0", "step-1", "step-2", "validation-step-2"]
    assert {e.kind for e in events} == {"metrics"}
    assert events[1].step == 1
    assert events[1].metrics == {"train_loss": 1.75, "epoch": 0.0, "perplexity": 5.75}
    assert events[3].metrics == {"valid_loss": 1.5, "epoch": 1.0, "valid_perplexity": 4.48}
    assert events[0].at.endswith("Z")
    assert [e.id for e in provider.events(arn, after="step-1")] == ["step-2", "validation-step-2"]
    assert provider.events(arn, after="validation-step-2") == []


def test_cancel_stops_the_job(provider, aws, files):
    arn = provider.launch(request(files)).provider_job_id
    job = provider.cancel(arn)
    assert (job.status, job.provider_status) == ("cancelled", "Stopped")
    assert aws.bedrock_job(arn).status == "Stopped"


@pytest.mark.parametrize(
    ("code", "http_status"),
    [("ThrottlingException", 429), ("InternalServerException", 500), ("ServiceUnavailableException", 503),
     ("SomethingNew", 502)],
)  # fmt: skip
def test_throttling_and_server_errors_are_transient(provider, code, http_status):
    with Stubber(provider.bedrock) as stub:
        stub.add_client_error(
            "get_model_customization_job", service_error_code=code, service_message="slow down",
            http_status_code=http_status, response_meta={"RequestId": "req-123"},
        )  # fmt: skip
        with pytest.raises(ProviderError) as raised:
            provider.poll("finetune-ops-job-1")
    assert raised.value.transient
    assert raised.value.request_id == "req-123"
    assert "req-123" in str(raised.value) and code in str(raised.value)


def test_validation_errors_are_final_and_keep_the_message(provider):
    with Stubber(provider.bedrock) as stub:
        stub.add_client_error(
            "get_model_customization_job", service_error_code="ValidationException",
            service_message="epochCount must be at most 5", http_status_code=400, response_meta={"RequestId": "req-9"},
        )  # fmt: skip
        with pytest.raises(ProviderError) as raised:
            provider.poll("finetune-ops-job-1")
    assert not raised.value.transient
    assert "epochCount must be at most 5" in str(raised.value) and raised.value.request_id == "req-9"


def test_access_denied_is_a_refusal_that_points_at_the_role(provider):
    with Stubber(provider.bedrock) as stub:
        stub.add_client_error(
            "stop_model_customization_job", service_error_code="AccessDeniedException",
            service_message="not authorized", http_status_code=403, response_meta={"RequestId": "req-7"},
        )  # fmt: skip
        with pytest.raises(ProviderRefused) as raised:
            provider.cancel("finetune-ops-job-1")
    assert not raised.value.transient
    assert "FINETUNE_BEDROCK_ROLE_ARN" in (raised.value.hint or "") and raised.value.request_id == "req-7"


@pytest.mark.parametrize(
    "exc",
    [EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), ReadTimeoutError(endpoint_url="http://127.0.0.1:9")],
)
def test_network_failures_are_transient(exc):
    error = aws_error(exc, action="read the customization job")
    assert error.transient and type(error) is ProviderError


def test_botocore_retries_are_modest(provider):
    retries = provider.bedrock.meta.config.retries
    assert retries["mode"] == "standard" and retries["total_max_attempts"] <= 3


def test_cancel_of_a_job_that_already_ended_reports_how_it_ended(provider):
    with Stubber(provider.bedrock) as stub:
        stub.add_client_error(
            "stop_model_customization_job", service_error_code="ValidationException",
            service_message="job is not in a stoppable state", http_status_code=400,
        )  # fmt: skip
        stub.add_response("get_model_customization_job", _stubbed_job("Completed", outputModelArn=MODEL_ARN))
        job = provider.cancel("finetune-ops-job-1")
    assert (job.status, job.model_id) == ("succeeded", MODEL_ARN)


def test_rejected_credentials_are_a_refusal(provider):
    with Stubber(provider.bedrock) as stub:
        stub.add_client_error(
            "get_model_customization_job", service_error_code="UnrecognizedClientException",
            service_message="The security token included in the request is invalid.", http_status_code=403,
        )  # fmt: skip
        with pytest.raises(ProviderRefused, match="UnrecognizedClientException") as raised:
            provider.poll("finetune-ops-job-1")
    assert "credentials" in (raised.value.hint or "")


def test_a_missing_training_file_fails_before_any_call(provider, aws, files, tmp_path):
    with pytest.raises(ProviderError, match="gone.jsonl") as raised:
        provider.launch(request(files, train_file=tmp_path / "gone.jsonl"))
    assert not raised.value.transient
    assert aws.client("bedrock").list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
