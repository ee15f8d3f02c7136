"""Serving Bedrock custom models: custom model deployments (on demand) and provisioned throughput.

Bedrock invokes a custom model only through one of these, by its ARN
(`modelId` in InvokeModel / Converse):

- on demand: CreateCustomModelDeployment, paid per token; documented for custom
  Amazon Nova models (the catalog's `deployment.on_demand`). Statuses Creating,
  Active, Failed; once deleted, GetCustomModelDeployment answers
  ResourceNotFoundException.
- provisioned throughput: CreateProvisionedModelThroughput with N model units,
  paid per unit and hour, without commitment (deletable at any time) or for one
  or six months. Statuses Creating, InService, Updating (still serving while its
  units or model change), Failed; deleted, it is not found.

Both resources are named after our deployment id (``finetune-ops-<id>``), tagged
``finetune-ops-deployment=<id>``, and carry the id as ``clientRequestToken``, so a
repeated create answers the first one; a name already taken is looked up and
reused, since only this deployment is ever given it. Errors become
`ProviderError`s through the provider's own mapping (`aws_error`).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from core.platform.settings import Settings
from core.providers.base import ProviderError, ProviderNotConfigured
from core.providers.bedrock.provider import _CLIENT_CONFIG, _code, aws_error, bedrock_name, client_request_token
from core.providers.checks import require_sdk
from core.providers.deploy import DeploymentRequest, ModelDeployer, ProviderDeployment
from core.vocabulary import Commitment, DeploymentKind, DeploymentState, Provider

log = logging.getLogger(__name__)

DEPLOYMENT_TAG = "finetune-ops-deployment"
COMMITMENT_DURATIONS: dict[Commitment, str | None] = {
    Commitment.NONE: None,  # Bedrock: leave commitmentDuration out for an hourly, deletable throughput
    Commitment.ONE_MONTH: "OneMonth",
    Commitment.SIX_MONTHS: "SixMonths",
}
_ARN_FIELDS = {DeploymentKind.ON_DEMAND: "customModelDeploymentArn", DeploymentKind.PROVISIONED: "provisionedModelArn"}
_NOT_FOUND = "ResourceNotFoundException"
_CONFLICT = frozenset({"ConflictException", "ResourceInUseException"})


class BedrockDeployer(ModelDeployer):
    """Custom model deployments and provisioned throughputs of Bedrock custom models."""

    name = Provider.BEDROCK
    STATUS_MAPS: ClassVar[dict[DeploymentKind, dict[str, DeploymentState]]] = {
        DeploymentKind.ON_DEMAND: {
            "Creating": DeploymentState.CREATING,
            "Active": DeploymentState.ACTIVE,
            "Failed": DeploymentState.FAILED,
        },
        DeploymentKind.PROVISIONED: {
            "Creating": DeploymentState.CREATING,
            "InService": DeploymentState.ACTIVE,
            "Updating": DeploymentState.ACTIVE,  # still answering while its model units or model change
            "Failed": DeploymentState.FAILED,
        },
    }

    def __init__(self, settings: Settings, *, session: boto3.Session | None = None) -> None:
        require_sdk("boto3", provider="Bedrock", package="boto3")
        options: dict[str, Any] = {"region_name": settings.aws_region, "config": _CLIENT_CONFIG}
        if settings.aws_endpoint_url:
            options["endpoint_url"] = settings.aws_endpoint_url
        try:
            self.bedrock = (session or boto3.Session()).client("bedrock", **options)
        except BotoCoreError as exc:
            raise ProviderNotConfigured(
                f"cannot set up the AWS client for Bedrock deployments: {exc}",
                hint="Check the AWS profile and configuration this process runs with (AWS_PROFILE, ~/.aws/config).",
            ) from exc

    def create(self, request: DeploymentRequest) -> ProviderDeployment:
        name = deployment_name(request.deployment_id)
        try:
            arn = self._create(request, name)
        except ClientError as exc:
            if _code(exc) not in _CONFLICT:
                raise aws_error(
                    exc, action=f"create the {request.kind} deployment", deployment=request.deployment_id
                ) from exc
            arn = self._already_created(request, name, exc)
        except BotoCoreError as exc:
            raise aws_error(
                exc, action=f"create the {request.kind} deployment", deployment=request.deployment_id
            ) from exc
        log.info("deployment %s: Bedrock %s deployment %s requested", request.deployment_id, request.kind, arn)
        return ProviderDeployment(arn=arn, status=DeploymentState.CREATING, provider_status="Creating")

    def read(self, kind: DeploymentKind, arn: str) -> ProviderDeployment | None:
        found = self._get(kind, arn)
        return None if found is None else self._deployment(kind, found)

    def find(self, kind: DeploymentKind, deployment_id: str) -> ProviderDeployment | None:
        found = self._get(kind, deployment_name(deployment_id))  # both Get operations take a name too
        return None if found is None else self._deployment(kind, found)

    def delete(self, kind: DeploymentKind, arn: str) -> None:
        try:
            if kind is DeploymentKind.ON_DEMAND:
                self.bedrock.delete_custom_model_deployment(customModelDeploymentIdentifier=arn)
            else:
                self.bedrock.delete_provisioned_model_throughput(provisionedModelId=arn)
        except ClientError as exc:
            if _code(exc) == _NOT_FOUND:
                return  # already gone
            raise aws_error(exc, action=f"delete the {kind} deployment {arn}", arn=arn) from exc
        except BotoCoreError as exc:
            raise aws_error(exc, action=f"delete the {kind} deployment {arn}", arn=arn) from exc

    # Helpers ------------------------------------------------------------------------------------

    def _deployment(self, kind: DeploymentKind, found: dict[str, Any]) -> ProviderDeployment:
        provider_status = str(found["status"])
        status = self.unified(kind, provider_status)
        error = found.get("failureMessage") or "Bedrock gave no reason."
        return ProviderDeployment(
            arn=str(found[_ARN_FIELDS[kind]]), status=status, provider_status=provider_status,
            error=str(error) if status is DeploymentState.FAILED else None,
        )  # fmt: skip

    def _create(self, request: DeploymentRequest, name: str) -> str:
        common = {
            "clientRequestToken": client_request_token(request.deployment_id),
            "tags": [{"key": DEPLOYMENT_TAG, "value": request.deployment_id}],
        }
        if request.kind is DeploymentKind.ON_DEMAND:
            reply = self.bedrock.create_custom_model_deployment(
                modelDeploymentName=name, modelArn=request.model_id,
                description=f"finetune-ops deployment {request.deployment_id}", **common,
            )  # fmt: skip
            return str(reply["customModelDeploymentArn"])
        params: dict[str, Any] = {
            "provisionedModelName": name, "modelId": request.model_id, "modelUnits": request.model_units, **common,
        }  # fmt: skip
        duration = COMMITMENT_DURATIONS[request.commitment]
        if duration is not None:
            params["commitmentDuration"] = duration
        reply = self.bedrock.create_provisioned_model_throughput(**params)
        return str(reply["provisionedModelArn"])

    def _already_created(self, request: DeploymentRequest, name: str, conflict: ClientError) -> str:
        """The name is taken: only this deployment is ever given it, so the resource is ours; anything else clashes."""
        try:
            found = self._get(request.kind, name)
        except ProviderError:
            found = None
        arn = (found or {}).get(_ARN_FIELDS[request.kind])
        if not arn:
            raise aws_error(
                conflict, action=f"create the {request.kind} deployment", deployment=request.deployment_id
            ) from conflict
        log.info("deployment %s: Bedrock already has %s for it; reusing it", request.deployment_id, arn)
        return str(arn)

    def _get(self, kind: DeploymentKind, identifier: str) -> dict[str, Any] | None:
        try:
            if kind is DeploymentKind.ON_DEMAND:
                found: dict[str, Any] = self.bedrock.get_custom_model_deployment(
                    customModelDeploymentIdentifier=identifier
                )
            else:
                found = self.bedrock.get_provisioned_model_throughput(provisionedModelId=identifier)
        except ClientError as exc:
            if _code(exc) == _NOT_FOUND:
                return None
            raise aws_error(exc, action=f"read the {kind} deployment {identifier}", arn=identifier) from exc
        except BotoCoreError as exc:
            raise aws_error(exc, action=f"read the {kind} deployment {identifier}", arn=identifier) from exc
        return found


def deployment_name(deployment_id: str) -> str:
    """The name Bedrock knows our deployment by: `finetune-ops-<id>`, within its 63-character rule."""
    return bedrock_name(f"finetune-ops-{deployment_id}")
