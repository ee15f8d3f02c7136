"""Platform: settings, the store, migrations, the outbox and its events, audit, actors, approvals, scheduling."""

from core.platform import approvals, audit, deliveries, events, outbox, status
from core.platform.actors import SCHEDULER, Actor, cli_actor
from core.platform.approvals import Approval, ApprovalList
from core.platform.config_report import ConfigReport, describe_settings
from core.platform.notifications import Notice, notify
from core.platform.settings import Settings
from core.platform.status import StatusReport, get_status
from core.platform.store import Store, open_store
from core.platform.text import lone_surrogate

__all__ = [
    "SCHEDULER",
    "Actor",
    "Approval",
    "ApprovalList",
    "ConfigReport",
    "Notice",
    "Settings",
    "StatusReport",
    "Store",
    "approvals",
    "audit",
    "cli_actor",
    "deliveries",
    "describe_settings",
    "events",
    "get_status",
    "lone_surrogate",
    "notify",
    "open_store",
    "outbox",
    "status",
]
