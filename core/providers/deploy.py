"""The contract for serving a trained model: what a provider needs before an application can call a version.

Providers differ: OpenAI serves a fine-tuned model by its id, so nothing is
deployed; Azure OpenAI serves one only through a deployment made in Azure,
which this project does not create; a local version is served from its adapter
path; a Bedrock custom model is invoked through a custom model deployment (on
demand) or a provisioned throughput, which `ModelDeployer` creates, reads and
deletes. `DeployCapability` (one per entry of `core.providers.REGISTRY`) says
which of these holds for a provider.

Every status a provider documents maps to exactly one `DeploymentState`
(`STATUS_MAPS`, checked complete by a test). `read` answers None when the
provider no longer knows the deployment (it was deleted).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from core.platform.settings import Settings
from core.providers.base import ProviderError
from core.vocabulary import Commitment, DeploymentKind, DeploymentState, Provider


@dataclass(frozen=True)
class DeploymentRequest:
    deployment_id: str  # ours: names the provider's resource and is its idempotency token
    model_id: str  # the provider's id of the trained model (a Bedrock custom model ARN)
    kind: DeploymentKind
    model_units: int = 1  # provisioned only
    commitment: Commitment = Commitment.NONE  # provisioned only


@dataclass(frozen=True)
class ProviderDeployment:
    arn: str  # what applications call: the deployment's or the provisioned model's ARN
    status: DeploymentState
    provider_status: str  # the provider's own word, kept for people and debugging
    error: str | None = None


class ModelDeployer(ABC):
    """Creates, reads and deletes the deployments through which a provider serves trained models."""

    name: Provider
    STATUS_MAPS: ClassVar[dict[DeploymentKind, dict[str, DeploymentState]]]  # per kind: every documented status

    @abstractmethod
    def create(self, request: DeploymentRequest) -> ProviderDeployment:
        """Start the deployment; asking again with the same `deployment_id` answers the same one."""

    @abstractmethod
    def read(self, kind: DeploymentKind, arn: str) -> ProviderDeployment | None:
        """The deployment as it stands, or None when the provider no longer has it."""

    @abstractmethod
    def find(self, kind: DeploymentKind, deployment_id: str) -> ProviderDeployment | None:
        """The deployment created for our `deployment_id` (when its ARN was never recorded), or None."""

    @abstractmethod
    def delete(self, kind: DeploymentKind, arn: str) -> None:
        """Tear the deployment down; one the provider no longer has counts as deleted."""

    def unified(self, kind: DeploymentKind, provider_status: str) -> DeploymentState:
        try:
            return self.STATUS_MAPS[kind][provider_status]
        except KeyError:
            # Transient on purpose: the deployment still exists at the provider; keep it and ask again later.
            raise ProviderError(
                f"{self.name} reported a {kind} deployment status finetune-ops does not know: {provider_status!r}.",
                hint="Upgrade finetune-ops; until then the deployment is left as it was and read again later.",
                transient=True,
            ) from None


DeployerFactory = Callable[[Settings], ModelDeployer]


@dataclass(frozen=True)
class DeployCapability:
    """What serving a provider's trained model takes beyond the model itself."""

    build: DeployerFactory | None = None  # this project creates the deployment (Bedrock)
    made_elsewhere: str | None = None  # what must exist outside this project, said to deciders (Azure)

    @property
    def creates(self) -> bool:
        return self.build is not None


NOTHING_TO_DEPLOY = DeployCapability()
