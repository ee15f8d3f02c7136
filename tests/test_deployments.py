"""Provider deployments of model versions behind the approval: Bedrock through botocore's Stubber, and a fake.

The Stubber checks every Bedrock request against the service model botocore ships; the small stateful fake
(`FakeBedrock`) drives the lifecycles moto cannot: creating -> active, creating -> failed, deleting -> deleted.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import boto3
import pytest
from botocore.session import Session as BotocoreSession
from botocore.stub import ANY, Stubber

from bot.slack.blocks import render
from core import actions, registry
from core.errors import Conflict
from core.platform import approvals
from core.platform.actors import SCHEDULER, Actor
from core.platform.approvals import Approval
from core.platform.settings import Settings
from core.platform.store import Store
from core.platform.timeutil import iso, utcnow
from core.providers import REGISTRY, ProviderEntry, ProviderError
from core.providers.bedrock.deploy import DEPLOYMENT_TAG, BedrockDeployer, deployment_name
from core.providers.bedrock.provider import client_request_token
from core.providers.deploy import (
    NOTHING_TO_DEPLOY,
    DeployCapability,
    DeploymentRequest,
    ModelDeployer,
    ProviderDeployment,
)
from core.registry import deployments
from core.services import Services, build_services
from core.vocabulary import ApprovalState, Commitment, DeploymentKind, DeploymentState, Face, Provider, Role
from tests.conftest import make_settings
from tests.fake_provider import FakeProvider

ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)  # asks
BOB = Actor("U2", Face.SLACK, role=Role.APPROVER)
CAROL = Actor("carol", Face.CLI, role=Role.APPROVER)
NOVA = "amazon.nova-micro-v1:0"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA_MODEL = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abcdefghijkl"
HAIKU_MODEL = (
    "arn:aws:bedrock:us-west-2:123456789012:custom-model/anthropic.claude-3-haiku-20240307-v1:0:200k/mnopqrstuvwx"
)
DEPLOYMENT_ARN = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/a1b2c3d4e5f6"
PROVISIONED_ARN = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/f6e5d4c3b2a1"
TOKEN = client_request_token("dep_0123456789ab")  # the request token a deployment with this id sends


# A stateful Bedrock for the lifecycle ---------------------------------------------------------------------


class FakeBedrock(ModelDeployer):
    """Deployments that stay Creating until a test finishes or fails them; a deleted one is gone at once."""

    name = Provider.BEDROCK
    STATUS_MAPS = BedrockDeployer.STATUS_MAPS

    def __init__(self) -> None:
        self.live: dict[str, dict] = {}  # arn -> {"id", "kind", "status", "error"}
        self.created: list[DeploymentRequest] = []
        self.deleted: list[str] = []
        self.refuse_delete: str | None = None  # a final refusal, e.g. a commitment term not over yet

    def create(self, request: DeploymentRequest) -> ProviderDeployment:
        self.created.append(request)
        arn = f"arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/{request.deployment_id[-12:]}"
        self.live.setdefault(arn, {"id": request.deployment_id, "kind": request.kind, "status": "Creating"})
        return ProviderDeployment(arn=arn, status=DeploymentState.CREATING, provider_status="Creating")

    def read(self, kind: DeploymentKind, arn: str) -> ProviderDeployment | None:
        found = self.live.get(arn)
        if found is None:
            return None
        status = self.unified(kind, found["status"])
        return ProviderDeployment(arn=arn, status=status, provider_status=found["status"], error=found.get("error"))

    def find(self, kind: DeploymentKind, deployment_id: str) -> ProviderDeployment | None:
        arn = next((arn for arn, found in self.live.items() if found["id"] == deployment_id), None)
        return self.read(kind, arn) if arn else None

    def delete(self, kind: DeploymentKind, arn: str) -> None:
        if self.refuse_delete:
            raise ProviderError(f"Bedrock could not delete {arn}: {self.refuse_delete}")
        self.deleted.append(arn)
        self.live.pop(arn, None)

    def finish(self, arn: str) -> None:
        kind = self.live[arn]["kind"]
        self.live[arn]["status"] = "Active" if kind is DeploymentKind.ON_DEMAND else "InService"

    def fail(self, arn: str, message: str) -> None:
        self.live[arn].update(status="Failed", error=message)


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def services_with(store: Store, settings: Settings, deployer: ModelDeployer, clock: Clock | None = None) -> Services:
    """Services whose Bedrock deployments go to `deployer`."""
    entry = REGISTRY[Provider.BEDROCK]
    bedrock = ProviderEntry(check=entry.check, build=entry.build, deploy=DeployCapability(build=lambda _: deployer))
    registry_ = {**REGISTRY, Provider.BEDROCK: bedrock}
    return build_services(settings, store=store, providers=registry_, clock=clock or Clock())


@pytest.fixture
def fake() -> FakeBedrock:
    return FakeBedrock()


@pytest.fixture
def svc(store, settings, fake) -> Services:
    return services_with(store, settings, fake)


def register(
    store: Store, *, provider: str = "bedrock", base_model: str = NOVA, model_id: str | None = NOVA_MODEL
) -> str:
    with store.write():
        version = registry.register_version(
            store, name="support", provider=provider, provider_model_id=model_id, job_id=None,
            dataset_version_id=None, base_model=base_model, metrics={}, cost_usd=None, actor=SCHEDULER,
            reason="test", now=iso(),
        )  # fmt: skip
    return version.id


def approve(svc: Services, change: registry.RegistryChange) -> Approval:
    """Bob, then Carol, until the request has the approvers it needs (production needs two by default)."""
    assert change.approval is not None and not change.applied, "the change must wait for an approval"
    for voter in (BOB, CAROL):
        decided = actions.decide(svc, approval_id=change.approval.id, actor=voter, approve=True)
        if decided.status is not ApprovalState.PENDING:
            return decided
    raise AssertionError("still pending after two approvals")


def serving(store: Store, alias: str = "production") -> str | None:
    found = next((a for a in registry.list_aliases(store, "support") if a.alias == alias), None)
    return found.version_id if found else None


def deployment_of(store: Store, version_id: str) -> deployments.Deployment:
    [found] = [d for d in deployments.for_model(store, "support") if d.model_version_id == version_id]
    return found


def notices(store: Store) -> list[str]:
    return [row["text"] for row in store.query("SELECT text FROM outbox WHERE kind = 'notice' ORDER BY id")]


def put_openai_in_production(svc: Services) -> str:
    """support:vN (OpenAI) serving production, through the normal approval."""
    version_id = register(svc.store, provider="openai", base_model="gpt-4o-mini", model_id="ft:gpt-4o-mini:acme:1")
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id))
    assert serving(svc.store) == version_id
    return version_id


# Bedrock through the Stubber ------------------------------------------------------------------------------


@pytest.fixture
def aws_session(monkeypatch, tmp_path) -> boto3.Session:
    """Fake keys; no AWS profile, config or credentials file of the machine is read."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


@pytest.fixture
def bedrock(settings, aws_session) -> BedrockDeployer:
    return BedrockDeployer(settings, session=aws_session)


def on_demand_reply(status: str, **extra) -> dict:
    return {
        "customModelDeploymentArn": DEPLOYMENT_ARN, "modelDeploymentName": "finetune-ops-dep-1",
        "modelArn": NOVA_MODEL, "createdAt": datetime(2026, 12, 1), "status": status, **extra,
    }  # fmt: skip


def provisioned_reply(status: str, **extra) -> dict:
    return {
        "modelUnits": 1, "desiredModelUnits": 1, "provisionedModelName": "finetune-ops-dep-1",
        "provisionedModelArn": PROVISIONED_ARN, "modelArn": HAIKU_MODEL, "desiredModelArn": HAIKU_MODEL,
        "foundationModelArn": "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-haiku-20240307-v1:0:200k",
        "status": status, "creationTime": datetime(2026, 12, 1), "lastModifiedTime": datetime(2026, 12, 1), **extra,
    }  # fmt: skip


def test_on_demand_deploy_waits_for_approval_then_for_bedrock_and_resolves_to_the_deployment_arn(
    store, settings, bedrock
):
    svc = services_with(store, settings, bedrock)
    version_id = register(store)
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id)
    assert change.approval is not None
    assert change.approval.facts["Deployment"] == (
        "on-demand deployment (pay per token at the catalog's inference price: $0.035 per 1M input tokens,"
        " $0.14 per 1M output tokens)"
    )
    with Stubber(bedrock.bedrock) as stub:
        stub.add_response(
            "create_custom_model_deployment", {"customModelDeploymentArn": DEPLOYMENT_ARN},
            {"modelDeploymentName": ANY, "modelArn": NOVA_MODEL, "description": ANY, "tags": ANY,
             "clientRequestToken": ANY},
        )  # fmt: skip
        approved = approve(svc, change)
        stub.assert_no_pending_responses()
        assert serving(store) is None, "no alias moves while the deployment is being created"
        created = deployment_of(store, version_id)
        assert (created.kind, created.status, created.provider_arn, created.approval_id) == (
            DeploymentKind.ON_DEMAND, DeploymentState.CREATING, DEPLOYMENT_ARN, approved.id,
        )  # fmt: skip

        stub.add_response(
            "get_custom_model_deployment",
            on_demand_reply("Creating"),
            {"customModelDeploymentIdentifier": DEPLOYMENT_ARN},
        )
        deployments.poll_deployments(svc)
        assert serving(store) is None and deployment_of(store, version_id).status is DeploymentState.CREATING

        stub.add_response(
            "get_custom_model_deployment",
            on_demand_reply("Active"),
            {"customModelDeploymentIdentifier": DEPLOYMENT_ARN},
        )
        deployments.poll_deployments(svc)
        stub.assert_no_pending_responses()
    assert deployment_of(store, version_id).status is DeploymentState.ACTIVE
    assert serving(store) == version_id
    [row] = store.query("SELECT * FROM promotions WHERE alias = 'production'")
    assert (row["to_version_id"], row["approval_id"], row["actor"]) == (version_id, approved.id, "cli:ann")
    found = registry.resolve_model(store, "support", "user-42")
    assert (found.version_id, found.provider_model_id) == (version_id, DEPLOYMENT_ARN)
    assert registry.get_version(store, version_id).provider_model_id == NOVA_MODEL, "lineage keeps the model's id"


def test_a_model_that_cannot_run_on_demand_gets_provisioned_throughput_at_its_hourly_price(
    store, tmp_path, aws_session
):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"models": {HAIKU: {"deployment": {"provisioned_usd_per_model_unit_hour": {
        "none": 20.5, "6-months": 14.75}}}}}))  # fmt: skip
    settings = make_settings(tmp_path, catalog_file=catalog, bedrock_model_units=2, aws_region="us-west-2")
    bedrock = BedrockDeployer(settings, session=aws_session)
    svc = services_with(store, settings, bedrock)
    version_id = register(store, base_model=HAIKU, model_id=HAIKU_MODEL)
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id)
    assert change.approval is not None
    assert change.approval.facts["Deployment"] == (
        "provisioned throughput: 2 model units, $41.00/hour (~$29,930/month), no commitment"
    )
    with Stubber(bedrock.bedrock) as stub:
        stub.add_response(
            "create_provisioned_model_throughput",
            {"provisionedModelArn": PROVISIONED_ARN},
            {
                "provisionedModelName": ANY,
                "modelId": HAIKU_MODEL,
                "modelUnits": 2,
                "clientRequestToken": ANY,
                "tags": ANY,
            },
        )  # fmt: skip  - no commitmentDuration: an hourly throughput, deletable at any time
        approve(svc, change)
        stub.add_response(
            "get_provisioned_model_throughput", provisioned_reply("InService"), {"provisionedModelId": PROVISIONED_ARN}
        )
        deployments.poll_deployments(svc)
        stub.assert_no_pending_responses()
    created = deployment_of(store, version_id)
    assert (created.kind, created.model_units, created.hourly_usd, created.commitment, created.status) == (
        DeploymentKind.PROVISIONED, 2, 41.0, Commitment.NONE, DeploymentState.ACTIVE,
    )  # fmt: skip
    assert serving(store) == version_id
    assert registry.resolve_model(store, "support", "k").provider_model_id == PROVISIONED_ARN


def test_a_commitment_is_sent_and_shown(store, tmp_path, fake):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"models": {HAIKU: {"deployment": {"provisioned_usd_per_model_unit_hour": {
        "6-months": 14.75}}}}}))  # fmt: skip
    settings = make_settings(tmp_path, catalog_file=catalog, bedrock_commitment="6-months")
    svc = services_with(store, settings, fake)
    version_id = register(store, base_model=HAIKU, model_id=HAIKU_MODEL)
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id)
    assert change.approval is not None
    assert change.approval.facts["Deployment"] == (
        "provisioned throughput: 1 model unit, $14.75/hour (~$10,768/month), 6-months commitment"
    )
    approve(svc, change)
    assert fake.created[0].commitment is Commitment.SIX_MONTHS and fake.created[0].model_units == 1


def test_an_unknown_provisioned_price_is_said_with_how_to_set_it(store, settings, fake):
    svc = services_with(store, settings, fake)
    version_id = register(store, base_model=HAIKU, model_id=HAIKU_MODEL)
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id)
    assert change.approval is not None
    fact = change.approval.facts["Deployment"]
    assert fact.startswith("provisioned throughput: 1 model unit, price unknown") and "FINETUNE_CATALOG_FILE" in fact


def test_the_deployer_sends_what_bedrock_documents(bedrock):
    """Named and tagged after our id, which (as a request token Bedrock accepts) makes a repeated create one."""
    request = DeploymentRequest(deployment_id="dep_0123456789ab", model_id=NOVA_MODEL, kind=DeploymentKind.ON_DEMAND)
    with Stubber(bedrock.bedrock) as stub:
        stub.add_response(
            "create_custom_model_deployment", {"customModelDeploymentArn": DEPLOYMENT_ARN},
            {"modelDeploymentName": "finetune-ops-dep-0123456789ab", "modelArn": NOVA_MODEL,
             "description": "finetune-ops deployment dep_0123456789ab",
             "tags": [{"key": DEPLOYMENT_TAG, "value": "dep_0123456789ab"}], "clientRequestToken": TOKEN},
        )  # fmt: skip
        stub.add_response(
            "create_provisioned_model_throughput", {"provisionedModelArn": PROVISIONED_ARN},
            {"provisionedModelName": "finetune-ops-dep-0123456789ab", "modelId": HAIKU_MODEL, "modelUnits": 3,
             "commitmentDuration": "OneMonth", "clientRequestToken": TOKEN,
             "tags": [{"key": DEPLOYMENT_TAG, "value": "dep_0123456789ab"}]},
        )  # fmt: skip
        assert bedrock.create(request).arn == DEPLOYMENT_ARN
        provisioned = DeploymentRequest(
            deployment_id="dep_0123456789ab", model_id=HAIKU_MODEL, kind=DeploymentKind.PROVISIONED, model_units=3,
            commitment=Commitment.ONE_MONTH,
        )  # fmt: skip
        assert bedrock.create(provisioned).arn == PROVISIONED_ARN


def test_a_name_already_taken_by_our_deployment_is_reused(bedrock):
    request = DeploymentRequest(deployment_id="dep_0123456789ab", model_id=NOVA_MODEL, kind=DeploymentKind.ON_DEMAND)
    with Stubber(bedrock.bedrock) as stub:
        stub.add_client_error("create_custom_model_deployment", "ConflictException", "name in use", 409)
        stub.add_response(
            "get_custom_model_deployment", on_demand_reply("Creating"),
            {"customModelDeploymentIdentifier": deployment_name("dep_0123456789ab")},
        )  # fmt: skip
        assert bedrock.create(request).arn == DEPLOYMENT_ARN


def test_reading_maps_statuses_and_keeps_bedrocks_reason(bedrock):
    with Stubber(bedrock.bedrock) as stub:
        stub.add_response("get_custom_model_deployment", on_demand_reply("Failed", failureMessage="model too old"))
        stub.add_response("get_provisioned_model_throughput", provisioned_reply("Updating"))
        stub.add_client_error("get_custom_model_deployment", "ResourceNotFoundException", "gone", 404)
        failed = bedrock.read(DeploymentKind.ON_DEMAND, DEPLOYMENT_ARN)
        updating = bedrock.read(DeploymentKind.PROVISIONED, PROVISIONED_ARN)
        gone = bedrock.read(DeploymentKind.ON_DEMAND, DEPLOYMENT_ARN)
    assert failed is not None and (failed.status, failed.error) == (DeploymentState.FAILED, "model too old")
    assert updating is not None and updating.status is DeploymentState.ACTIVE, "it still answers while updating"
    assert gone is None


def test_deleting_calls_the_right_api_and_a_missing_one_counts_as_deleted(bedrock):
    with Stubber(bedrock.bedrock) as stub:
        stub.add_response("delete_custom_model_deployment", {}, {"customModelDeploymentIdentifier": DEPLOYMENT_ARN})
        stub.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": PROVISIONED_ARN})
        stub.add_client_error("delete_provisioned_model_throughput", "ResourceNotFoundException", "gone", 404)
        bedrock.delete(DeploymentKind.ON_DEMAND, DEPLOYMENT_ARN)
        bedrock.delete(DeploymentKind.PROVISIONED, PROVISIONED_ARN)
        bedrock.delete(DeploymentKind.PROVISIONED, PROVISIONED_ARN)
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(("code", "status", "transient"), [("ThrottlingException", 429, True),
                                                          ("ValidationException", 400, False)])  # fmt: skip
def test_bedrock_errors_say_whether_to_try_again(bedrock, code, status, transient):
    with Stubber(bedrock.bedrock) as stub:
        stub.add_client_error(
            "get_provisioned_model_throughput", code, "no", status, response_meta={"RequestId": "r-1"}
        )
        with pytest.raises(ProviderError) as raised:
            bedrock.read(DeploymentKind.PROVISIONED, PROVISIONED_ARN)
    assert raised.value.transient is transient and raised.value.request_id == "r-1"


def test_the_status_maps_cover_every_status_bedrock_documents():
    model = BotocoreSession().get_service_model("bedrock")
    documented = {
        DeploymentKind.ON_DEMAND: model.operation_model("GetCustomModelDeployment").output_shape.members["status"],
        DeploymentKind.PROVISIONED: model.operation_model("GetProvisionedModelThroughput").output_shape.members[
            "status"
        ],
    }
    for kind, shape in documented.items():
        assert set(BedrockDeployer.STATUS_MAPS[kind]) == set(shape.enum), kind
    assert set(BedrockDeployer.STATUS_MAPS) == set(DeploymentKind)


def test_every_provider_says_what_serving_its_models_takes():
    assert REGISTRY[Provider.BEDROCK].deploy.creates
    assert (
        REGISTRY[Provider.AZURE].deploy.made_elsewhere
        == "needs an Azure deployment made in Azure; this does not create one"
    )
    for provider in (Provider.OPENAI, Provider.LOCAL):
        assert not REGISTRY[provider].deploy.creates and REGISTRY[provider].deploy.made_elsewhere is None


def test_a_provider_registered_as_a_bare_factory_deploys_nothing(store, settings):
    svc = build_services(settings, store=store, providers={Provider.OPENAI: lambda _: FakeProvider()})
    assert deployments.capability("openai", svc.providers) == NOTHING_TO_DEPLOY
    assert deployments.capability("bedrock", svc.providers).creates, "a provider it does not name keeps its entry"
    assert deployments.capability("no-such-provider", svc.providers) == NOTHING_TO_DEPLOY


# The lifecycle, with the fake ------------------------------------------------------------------------------


def test_an_unprotected_alias_waits_for_an_approval_when_a_deployment_would_be_created(svc, fake):
    version_id = register(svc.store)
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id, alias="staging")
    assert not change.applied and change.approval is not None and change.approval.approvals_needed == 1
    assert fake.created == [], "nothing is created before the approval"
    actions.decide(svc, approval_id=change.approval.id, actor=BOB, approve=True)
    assert len(fake.created) == 1 and serving(svc.store, "staging") is None
    assert any("changes once the deployment of" in text for text in notices(svc.store)), "people hear why it waits"
    fake.finish(deployment_of(svc.store, version_id).provider_arn or "")
    deployments.poll_deployments(svc)
    assert serving(svc.store, "staging") == version_id


def test_a_failed_deployment_leaves_the_alias_and_says_why(svc, fake):
    before = put_openai_in_production(svc)
    version_id = register(svc.store)
    approved = approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id))
    arn = deployment_of(svc.store, version_id).provider_arn or ""
    fake.fail(arn, "the custom model was customized before 2025-07-16")
    deployments.poll_deployments(svc)
    failed = deployment_of(svc.store, version_id)
    assert (failed.status, failed.error) == (
        DeploymentState.FAILED,
        "the custom model was customized before 2025-07-16",
    )
    assert serving(svc.store) == before
    [text] = [t for t in notices(svc.store) if "failed" in t]
    assert "customized before 2025-07-16" in text and approved.id in text and "No alias moved" in text
    assert registry.describe_model(svc.store, "support").deployments[-1].status is DeploymentState.FAILED
    waits = svc.store.query("SELECT status, detail FROM deployment_waits")
    assert [w["status"] for w in waits] == ["failed"]


def test_a_later_move_after_a_failure_creates_a_new_deployment(svc, fake):
    version_id = register(svc.store)
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id))
    fake.fail(deployment_of(svc.store, version_id).provider_arn or "", "capacity")
    deployments.poll_deployments(svc)
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id))
    assert len(fake.created) == 2 and deployment_of(svc.store, version_id).status is DeploymentState.CREATING


def test_an_alias_that_moved_meanwhile_drops_the_change_and_keeps_the_deployment(svc, fake):
    first = put_openai_in_production(svc)
    version_id = register(svc.store)
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id))
    other = register(svc.store, provider="openai", base_model="gpt-4o-mini", model_id="ft:gpt-4o-mini:acme:3")
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=other))
    assert serving(svc.store) == other and first != other
    fake.finish(deployment_of(svc.store, version_id).provider_arn or "")
    deployments.poll_deployments(svc)
    assert serving(svc.store) == other, "the approved change's premise is gone, so it is dropped"
    assert deployment_of(svc.store, version_id).status is DeploymentState.ACTIVE, "kept for a later move"
    assert any("was dropped" in text and "kept for a later move" in text for text in notices(svc.store))
    # A later move to it needs no new deployment: it applies as soon as it is approved.
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id)
    assert change.approval is not None and "Deployment" not in change.approval.facts
    approve(svc, change)
    assert serving(svc.store) == version_id and len(fake.created) == 1


def test_approving_after_the_alias_moved_is_refused_before_anything_is_created(svc, fake):
    put_openai_in_production(svc)
    version_id = register(svc.store)
    waiting = registry.request_deploy(svc, actor=ANN, name="support", version=version_id)
    other = register(svc.store, provider="openai", base_model="gpt-4o-mini", model_id="ft:gpt-4o-mini:acme:3")
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=other))
    assert waiting.approval is not None
    actions.decide(svc, approval_id=waiting.approval.id, actor=BOB, approve=True)  # one of two: a vote
    with pytest.raises(Conflict, match="changed since this was asked"):
        actions.decide(svc, approval_id=waiting.approval.id, actor=CAROL, approve=True)
    assert fake.created == [] and svc.store.query("SELECT * FROM deployment_waits") == []


def test_retiring_a_version_tears_its_deployment_down(svc, fake):
    version_id = register(svc.store)
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id, alias="staging"))
    arn = deployment_of(svc.store, version_id).provider_arn or ""
    fake.finish(arn)
    deployments.poll_deployments(svc)
    with pytest.raises(Conflict, match="still serves"):
        registry.retire(svc, actor=ANN, name="support", version=version_id)
    newer = register(svc.store, provider="openai", base_model="gpt-4o-mini", model_id="ft:gpt-4o-mini:acme:2")
    registry.request_deploy(svc, actor=ANN, name="support", version=newer, alias="staging")
    with svc.store.write():  # the candidate alias moves on too, so nothing serves the version
        svc.store.db.execute("UPDATE model_aliases SET model_version_id = ? WHERE alias = 'candidate'", (newer,))
    retired = registry.retire(svc, actor=ANN, name="support", version=version_id)
    assert retired.approval is not None
    actions.decide(svc, approval_id=retired.approval.id, actor=BOB, approve=True)
    assert fake.deleted == [arn]
    assert deployment_of(svc.store, version_id).status is DeploymentState.DELETING
    deployments.poll_deployments(svc)
    assert deployment_of(svc.store, version_id).status is DeploymentState.DELETED
    assert fake.deleted == [arn], "asked once"


def test_a_refused_deletion_is_announced_and_tried_again_later(store, settings, fake):
    clock = Clock()
    svc = services_with(store, settings, fake, clock)
    version_id = register(store)
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id, alias="staging"))
    register(store, provider="openai", base_model="gpt-4o-mini", model_id="ft:gpt-4o-mini:acme:2")  # the candidate
    fake.refuse_delete = "ValidationException: the commitment term has not ended"
    retired = registry.retire(svc, actor=ANN, name="support", version=version_id)
    assert retired.approval is not None
    actions.decide(svc, approval_id=retired.approval.id, actor=BOB, approve=True)
    refused = deployment_of(store, version_id)
    assert refused.status is DeploymentState.DELETING and "commitment term" in (refused.error or "")
    assert any("could not be deleted yet" in text for text in notices(store))
    fake.refuse_delete = None
    deployments.poll_deployments(svc)
    assert fake.deleted == [], "not before its backoff has passed"
    clock.tick(deployments.BACKOFF_CAP_SECONDS)
    deployments.poll_deployments(svc)
    deployments.poll_deployments(svc)
    assert len(fake.deleted) == 1 and deployment_of(store, version_id).status is DeploymentState.DELETED


def test_retiring_a_version_whose_deployment_is_still_being_created_drops_the_waiting_change(svc, fake):
    version_id = register(svc.store)
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id, alias="staging"))
    newer = register(svc.store, provider="openai", base_model="gpt-4o-mini", model_id="ft:gpt-4o-mini:acme:2")
    assert serving(svc.store, "candidate") == newer
    retired = registry.retire(svc, actor=ANN, name="support", version=version_id)
    assert retired.approval is not None
    actions.decide(svc, approval_id=retired.approval.id, actor=BOB, approve=True)
    deployments.poll_deployments(svc)
    assert deployment_of(svc.store, version_id).status is DeploymentState.DELETED and len(fake.deleted) == 1
    [wait] = svc.store.query("SELECT status, detail FROM deployment_waits")
    assert (wait["status"], wait["detail"]) == ("dropped", f"{version_id} was retired")
    assert serving(svc.store, "staging") is None


def test_an_openai_version_deploys_with_no_provider_call(svc, fake):
    version_id = register(svc.store, provider="openai", base_model="gpt-4o-mini", model_id="ft:gpt-4o-mini:acme:1")
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id, alias="staging")
    assert change.applied and serving(svc.store, "staging") == version_id
    production = registry.request_deploy(svc, actor=ANN, name="support", version=version_id)
    assert production.approval is not None and "Deployment" not in production.approval.facts
    approve(svc, production)
    assert serving(svc.store) == version_id
    assert fake.created == [] and svc.store.query("SELECT * FROM deployments") == []
    assert registry.resolve_model(svc.store, "support", "k").provider_model_id == "ft:gpt-4o-mini:acme:1"


def test_an_azure_version_says_the_deployment_is_made_in_azure_and_creates_nothing(svc, fake):
    version_id = register(svc.store, provider="azure", base_model="gpt-4o-mini", model_id="gpt-4o-mini.ft-abc")
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id)
    assert change.approval is not None
    assert change.approval.facts["Deployment"] == "needs an Azure deployment made in Azure; this does not create one"
    approve(svc, change)
    assert serving(svc.store) == version_id and fake.created == []


def test_the_creation_is_not_repeated_when_after_approved_runs_twice(store, settings, bedrock):
    svc = services_with(store, settings, bedrock)
    version_id = register(store)
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id)
    with Stubber(bedrock.bedrock) as stub:
        stub.add_response("create_custom_model_deployment", {"customModelDeploymentArn": DEPLOYMENT_ARN})
        approved = approve(svc, change)
        deployments.after_alias_approved(svc, approved)  # a Stubber with nothing queued fails any further call
        after_approved = actions.HANDLERS[approved.action].after_approved
        assert after_approved is not None
        after_approved(svc, approved)  # and once more through the action registry
        stub.assert_no_pending_responses()
    assert store.scalar("SELECT count(*) FROM deployments") == 1


def test_an_approval_whose_process_died_before_asking_bedrock_is_submitted_by_the_poller(store, settings, fake):
    clock = Clock()
    svc = services_with(store, settings, fake, clock)
    version_id = register(store)
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id, alias="staging")
    assert change.approval is not None
    handler = actions.HANDLERS[change.approval.action]
    approvals.decide(
        store, approval_id=change.approval.id, actor=BOB, approve=True, four_eyes=True, on_decided=handler.on_decided
    )  # fmt: skip  - committed, then the process died
    deployments.poll_deployments(svc)
    assert fake.created == [], "a creation just approved is left to the process that approved it, for a while"
    clock.tick(deployments.SUBMIT_GRACE_SECONDS + 1)
    deployments.poll_deployments(svc)
    assert len(fake.created) == 1 and deployment_of(store, version_id).status is DeploymentState.CREATING


def test_transient_trouble_backs_off_and_a_final_refusal_fails_the_deployment(store, settings, bedrock):
    clock = Clock()
    svc = services_with(store, settings, bedrock, clock)
    version_id = register(store)
    change = registry.request_deploy(svc, actor=ANN, name="support", version=version_id, alias="staging")
    assert change.approval is not None
    with Stubber(bedrock.bedrock) as stub:
        stub.add_client_error("create_custom_model_deployment", "ThrottlingException", "slow down", 429)
        actions.decide(svc, approval_id=change.approval.id, actor=BOB, approve=True)
        waiting = deployment_of(store, version_id)
        assert waiting.status is DeploymentState.CREATING and waiting.provider_arn is None
        assert "ThrottlingException" in (waiting.error or "")
        deployments.poll_deployments(svc)  # not due yet: nothing is asked
        clock.tick(deployments.BACKOFF_CAP_SECONDS)
        stub.add_client_error(
            "create_custom_model_deployment", "ValidationException", "Nova models customized before 2025-07-16", 400
        )
        deployments.poll_deployments(svc)
        stub.assert_no_pending_responses()
    failed = deployment_of(store, version_id)
    assert failed.status is DeploymentState.FAILED and "before 2025-07-16" in (failed.error or "")
    assert serving(store, "staging") is None


def test_a_version_without_a_provider_model_is_refused_and_nothing_is_written(svc):
    version_id = register(svc.store, model_id=None)
    with pytest.raises(Conflict, match="has no provider model id") as raised:
        registry.request_deploy(svc, actor=ANN, name="support", version=version_id, alias="staging")
    assert raised.value.hint and version_id in str(raised.value)
    assert svc.store.query("SELECT * FROM approvals") == [] and svc.store.query("SELECT * FROM deployments") == []


def test_models_show_lists_each_versions_deployment(svc, fake):
    version_id = register(svc.store)
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id))
    [shown] = registry.describe_model(svc.store, "support").deployments
    assert (shown.model_version_id, shown.kind, shown.status) == (version_id, "on_demand", "creating")
    assert shown.provider_arn in fake.live and shown.provider_model_id == NOVA_MODEL


def test_models_show_in_the_terminal_and_slack_lists_the_deployment_and_its_error(svc, fake, cli):
    version_id = register(svc.store)
    approve(svc, registry.request_deploy(svc, actor=ANN, name="support", version=version_id))
    fake.fail(deployment_of(svc.store, version_id).provider_arn or "", "quota [exceeded]")
    deployments.poll_deployments(svc)
    code, out, _ = cli("models", "show", "support")
    assert code == 0
    assert f"{version_id} deployment dep_" in out and "on_demand failed" in out and "(quota [exceeded])" in out
    shown = json.dumps(render(registry.describe_model(svc.store, "support")).blocks)  # Slack's `models show`
    assert f"{version_id} deployment dep_" in shown and "on_demand failed" in shown and "quota [exceeded]" in shown


# Catalog and settings --------------------------------------------------------------------------------------


def test_the_catalog_says_how_each_bedrock_model_is_served():
    from core.catalog.models import load_catalog

    catalog = load_catalog()
    for model_id, info in catalog.models.items():
        if info.provider != "bedrock":
            continue
        assert info.deployment is not None and info.deployment.as_of and info.deployment.sources, model_id
        unknown = [c for c in Commitment if info.deployment.hourly_usd(c) is None]
        if unknown:
            assert "price" in (info.deployment.notes or ""), "an unknown price is explained in notes"
    on_demand = {m for m, info in catalog.models.items() if info.deployment and info.deployment.on_demand}
    assert on_demand == {"amazon.nova-micro-v1:0", "amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0"}


def test_a_catalog_file_sets_one_price_and_keeps_the_rest(tmp_path):
    from core.catalog.models import load_catalog

    path = tmp_path / "catalog.json"
    path.write_text(
        json.dumps({"models": {HAIKU: {"deployment": {"provisioned_usd_per_model_unit_hour": {"none": 9}}}}})
    )
    info = load_catalog(path).models[HAIKU].deployment
    assert info is not None and info.hourly_usd(Commitment.NONE) == 9 and info.on_demand is False and info.sources


@pytest.mark.parametrize(
    ("variable", "value"), [("FINETUNE_BEDROCK_MODEL_UNITS", "0"), ("FINETUNE_BEDROCK_COMMITMENT", "2-months")]
)
def test_deployment_settings_refuse_bad_values_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        Settings(_env_file=None)
