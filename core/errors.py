"""Named errors raised by core services. Faces decide how to show them.

FinetuneError                 every error a user should read: message + fix hint
 ├── InvalidInput             an argument or field is wrong (names it, says how to fix)
 ├── NotFound                 an id that does not exist
 ├── PermissionDenied         the actor may not do this
 ├── Conflict                 the action clashes with current state
 │    └── EvaluationRequired  a version enters an alias only after a passing evaluation (FINETUNE_REQUIRE_EVALUATION)
 ├── StoreError               the database cannot be used as it is
 │    └── SchemaTooNew        the database was written by a newer finetune-ops
 └── ProviderError            a provider refused or failed a call; `transient` ones are retried
      ├── ProviderNotConfigured   settings the provider needs are missing
      ├── ProviderRefused         the provider will not run this for this account
      ├── InferenceBusy           too many chat calls wait for a model; retry shortly
      ├── ModelUnavailable        a model cannot be loaded or called here
      ├── ChatRefused             a model's API refused a chat as it stands (a 4xx); never retried
      └── ChatUnanswered          a model's API did not answer this time (429, 5xx, timeout); transient

The ProviderError branch lives in `core.providers.base`, beside the contract it belongs to; InferenceBusy,
ModelUnavailable, ChatRefused and ChatUnanswered in `core.inference.base`, beside the chat contract.
"""

from __future__ import annotations


class FinetuneError(Exception):
    """Base of every error meant for a user."""

    def __init__(self, message: str, *, hint: str | None = None, **ids: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.ids = ids

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class InvalidInput(FinetuneError):
    """An argument or field is wrong."""


class NotFound(FinetuneError):
    """Record not found."""


class PermissionDenied(FinetuneError):
    """The actor is not allowed to do this."""


class Conflict(FinetuneError):
    """The action clashes with the current state."""


class EvaluationRequired(Conflict):
    """The version may enter this alias only after a finished evaluation against its current version passes."""


class StoreError(FinetuneError):
    """The database cannot be used as it is."""


class SchemaTooNew(StoreError):
    """The database was written by a newer version of finetune-ops."""
