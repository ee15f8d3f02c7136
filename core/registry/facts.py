"""What a decider reads about a model version: its lineage, its cost, and its evaluation when one exists.

Approval requests for registry changes carry these facts (Slack shows them as
fields beside the Approve and Reject buttons); they are read once, when the
request is made, and kept with it.
"""

from __future__ import annotations

import json

from core.data import db as data_db
from core.platform.store import Store
from core.registry import db

_METRICS_SHOWN = 4


def lineage_facts(store: Store, version_id: str) -> dict[str, str]:
    """`version_id`'s provider and model id, base model, job, training cost and metrics, dataset and evaluation."""
    row = db.version(store, version_id)
    if row is None:
        return {}
    facts = {
        "Provider": f"{row['provider']}" + (f" · `{row['provider_model_id']}`" if row["provider_model_id"] else ""),
        "Base model": row["base_model"] or "unknown",
        "Trained by": f"job `{row['job_id']}`" if row["job_id"] else "registered by hand",
        "Training cost": f"${row['cost_usd']:,.2f}" if row["cost_usd"] is not None else "unknown",
    }
    metrics = json.loads(row["metrics"] or "{}")
    if metrics:
        shown = sorted(metrics.items())[:_METRICS_SHOWN]
        facts["Training metrics"] = ", ".join(f"{name} {value:.4g}" for name, value in shown)
    if row["dataset_version_id"]:
        facts["Dataset"] = dataset_fact(store, row["dataset_version_id"])
    evaluation = evaluation_summary(store, version_id)
    if evaluation:
        facts["Evaluation"] = evaluation
    from core.evaluation.guard import canary_facts  # evaluation builds on the registry: imported when asked

    return facts | canary_facts(store, version_id)  # where its online A/B stands, while it is a canary


def dataset_fact(store: Store, dataset_version_id: str) -> str:
    """`support@3: 1,204 examples (train 1,000 · validation 100 · test 104), feedback 2026-10-01 to 2026-11-20`."""
    if not data_db.version_exists(store, dataset_version_id):
        return f"{dataset_version_id} (no longer stored)"
    counts = json.loads(data_db.version_row(store, dataset_version_id)["counts"] or "{}")
    text = f"{dataset_version_id}: {counts.get('examples', 0):,} examples"
    splits = counts.get("splits") or {}
    if splits:
        text += " (" + " · ".join(f"{name} {count:,}" for name, count in splits.items()) + ")"
    first, last = data_db.feedback_span(store, dataset_version_id)
    if first and last:
        text += f", feedback {first[:10]} to {last[:10]}"
    return text


def evaluation_summary(store: Store, version_id: str) -> str | None:
    """The headline of the version's latest finished evaluation, when it has one."""
    row = db.latest_evaluation(store, version_id)
    if row is None:
        return None
    summary = json.loads(row["summary"] or "{}")
    headline = summary.get("headline") if isinstance(summary, dict) else None
    return str(headline) if headline else f"{row['kind']} evaluation finished"
