"""Versioned schema migrations. Append only: never edit a migration that has shipped.

`PRAGMA user_version` holds the applied version; `schema_migrations` keeps the
history. Each migration is a list of statements run in one transaction
(`executescript` would commit early, so statements are listed one by one).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


INFRASTRUCTURE = Migration(
    1,
    "control plane: audit log, outbox, scheduler heartbeats, Slack delivery dedupe",
    (
        """CREATE TABLE schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )""",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            face TEXT NOT NULL,
            request_id TEXT NOT NULL,
            command TEXT NOT NULL,
            args TEXT NOT NULL DEFAULT '{}',
            outcome TEXT NOT NULL,
            detail TEXT
        )""",
        "CREATE INDEX audit_log_at ON audit_log (at)",
        "CREATE INDEX audit_log_request ON audit_log (request_id)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            kind TEXT NOT NULL,
            message_key TEXT,
            channel TEXT,
            text TEXT NOT NULL,
            blocks TEXT,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            delivered_at TEXT,
            slack_channel TEXT,
            slack_ts TEXT
        )""",
        "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
        """CREATE TABLE slack_messages (
            message_key TEXT PRIMARY KEY,
            channel TEXT NOT NULL,
            ts TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE scheduler_runs (
            job_id TEXT PRIMARY KEY,
            last_run_at TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT
        )""",
        """CREATE TABLE slack_deliveries (
            delivery_key TEXT PRIMARY KEY,
            seen_at TEXT NOT NULL
        )""",
    ),
)

DOMAIN = Migration(
    2,
    "domain: feedback, datasets, jobs, registry, approvals, evaluation, experiments, alerts",
    (
        """CREATE TABLE feedback (
            id TEXT PRIMARY KEY,
            content_hash TEXT NOT NULL UNIQUE,
            agent TEXT NOT NULL,
            intent TEXT,
            system_prompt TEXT,
            input_messages TEXT NOT NULL,
            ai_output TEXT NOT NULL,
            final_output TEXT,
            rating REAL,
            model TEXT,
            template TEXT,
            latency_ms REAL,
            cost_usd REAL,
            user TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            metadata TEXT NOT NULL DEFAULT '{}',
            acceptance REAL,
            edit_ops TEXT,
            redactions TEXT,
            created_at TEXT NOT NULL,
            ingested_at TEXT NOT NULL
        )""",
        "CREATE INDEX feedback_agent ON feedback (agent, created_at)",
        "CREATE INDEX feedback_created ON feedback (created_at)",
        """CREATE TABLE datasets (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE dataset_versions (
            id TEXT PRIMARY KEY,
            dataset_id TEXT NOT NULL REFERENCES datasets (id),
            version INTEGER NOT NULL,
            filters TEXT NOT NULL DEFAULT '{}',
            split_seed INTEGER NOT NULL,
            counts TEXT NOT NULL DEFAULT '{}',
            token_stats TEXT NOT NULL DEFAULT '{}',
            content_hash TEXT NOT NULL,
            redaction_report TEXT NOT NULL DEFAULT '{}',
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (dataset_id, version)
        )""",
        """CREATE TABLE dataset_examples (
            dataset_version_id TEXT NOT NULL REFERENCES dataset_versions (id),
            feedback_id TEXT NOT NULL REFERENCES feedback (id),
            split TEXT NOT NULL CHECK (split IN ('train', 'validation', 'test')),
            quality REAL,
            PRIMARY KEY (dataset_version_id, feedback_id)
        )""",
        """CREATE TABLE dataset_exports (
            id INTEGER PRIMARY KEY,
            dataset_version_id TEXT NOT NULL REFERENCES dataset_versions (id),
            target TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            directory TEXT NOT NULL,
            metadata TEXT NOT NULL,
            validation TEXT,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (dataset_version_id, target, model)
        )""",
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            provider_job_id TEXT,
            dataset_version_id TEXT NOT NULL REFERENCES dataset_versions (id),
            base_model TEXT NOT NULL,
            method TEXT NOT NULL DEFAULT 'supervised',
            hyperparameters TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL CHECK (status IN ('pending_approval', 'submitting', 'validating', 'queued',
                                                   'running', 'succeeded', 'failed', 'cancelled')),
            provider_status TEXT,
            estimated_cost_usd REAL,
            actual_cost_usd REAL,
            idempotency_key TEXT UNIQUE,
            error TEXT,
            status_detail TEXT,
            model_id TEXT,
            trained_tokens INTEGER,
            approval_id TEXT,
            next_poll_at TEXT,
            poll_failures INTEGER NOT NULL DEFAULT 0,
            last_seen_event TEXT,
            requested_by TEXT NOT NULL,
            requested_via TEXT NOT NULL DEFAULT 'cli',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT
        )""",
        "CREATE INDEX jobs_status ON jobs (status)",
        """CREATE TABLE job_events (
            id INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs (id),
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT,
            step INTEGER,
            metrics TEXT,
            provider_event_id TEXT,
            UNIQUE (job_id, provider_event_id)
        )""",
        """CREATE TABLE model_versions (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            provider TEXT NOT NULL,
            provider_model_id TEXT,
            job_id TEXT REFERENCES jobs (id),
            dataset_version_id TEXT REFERENCES dataset_versions (id),
            base_model TEXT,
            status TEXT NOT NULL DEFAULT 'registered',
            metrics TEXT NOT NULL DEFAULT '{}',
            traffic_share REAL NOT NULL DEFAULT 0 CHECK (traffic_share BETWEEN 0 AND 1),
            created_at TEXT NOT NULL,
            UNIQUE (name, version)
        )""",
        """CREATE TABLE model_aliases (
            model_name TEXT NOT NULL,
            alias TEXT NOT NULL,
            model_version_id TEXT NOT NULL REFERENCES model_versions (id),
            updated_at TEXT NOT NULL,
            PRIMARY KEY (model_name, alias)
        )""",
        """CREATE TABLE promotions (
            id INTEGER PRIMARY KEY,
            model_name TEXT NOT NULL,
            alias TEXT NOT NULL,
            from_version_id TEXT REFERENCES model_versions (id),
            to_version_id TEXT REFERENCES model_versions (id),
            traffic_share REAL,
            actor TEXT NOT NULL,
            reason TEXT,
            at TEXT NOT NULL
        )""",
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            action TEXT NOT NULL,
            subject_id TEXT,
            payload TEXT NOT NULL DEFAULT '{}',
            estimated_cost_usd REAL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
            requested_by TEXT NOT NULL,
            requested_via TEXT NOT NULL,
            decided_by TEXT,
            decided_at TEXT,
            reason TEXT,
            expires_at TEXT,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX approvals_status ON approvals (status)",
        """CREATE TABLE evaluations (
            id TEXT PRIMARY KEY,
            model_version_id TEXT REFERENCES model_versions (id),
            dataset_version_id TEXT REFERENCES dataset_versions (id),
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            summary TEXT NOT NULL DEFAULT '{}',
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            finished_at TEXT
        )""",
        """CREATE TABLE eval_results (
            id INTEGER PRIMARY KEY,
            evaluation_id TEXT NOT NULL REFERENCES evaluations (id),
            feedback_id TEXT REFERENCES feedback (id),
            metric TEXT NOT NULL,
            value REAL,
            detail TEXT
        )""",
        """CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            control_version_id TEXT REFERENCES model_versions (id),
            treatment_version_id TEXT REFERENCES model_versions (id),
            metric TEXT NOT NULL,
            status TEXT NOT NULL,
            result TEXT NOT NULL DEFAULT '{}',
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            ended_at TEXT
        )""",
        """CREATE TABLE experiment_samples (
            id INTEGER PRIMARY KEY,
            experiment_id TEXT NOT NULL REFERENCES experiments (id),
            arm TEXT NOT NULL CHECK (arm IN ('control', 'treatment')),
            feedback_id TEXT REFERENCES feedback (id),
            value REAL NOT NULL,
            at TEXT NOT NULL
        )""",
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT,
            severity TEXT NOT NULL,
            message TEXT NOT NULL,
            created_at TEXT NOT NULL,
            resolved_at TEXT
        )""",
    ),
)

TYPED_EVENTS = Migration(
    3,
    "outbox rows carry the typed event they announce",
    ("ALTER TABLE outbox ADD COLUMN event TEXT",),
)

COUNTERS = Migration(
    4,
    "running totals kept with the writes (status costs the same at any size)",
    (
        """CREATE TABLE counters (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        )""",
        "INSERT INTO counters (name, value) SELECT 'feedback_events', count(*) FROM feedback",
    ),
)

DELIVERY_STATES = Migration(
    5,
    "outbox delivery states (superseded, dead letters, discarded), the attempt in flight, the heartbeat interval",
    (
        # SQLite cannot change a CHECK constraint in place: rebuild the table, keeping every row and id.
        """CREATE TABLE outbox_rebuilt (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            kind TEXT NOT NULL,
            message_key TEXT,
            channel TEXT,
            text TEXT NOT NULL,
            blocks TEXT,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'superseded', 'dead', 'discarded')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            delivered_at TEXT,
            slack_channel TEXT,
            slack_ts TEXT,
            event TEXT,
            sending_at TEXT
        )""",
        """INSERT INTO outbox_rebuilt (id, created_at, kind, message_key, channel, text, blocks, status, attempts,
                                       next_attempt_at, last_error, delivered_at, slack_channel, slack_ts, event)
           SELECT id, created_at, kind, message_key, channel, text, blocks, status, attempts,
                  next_attempt_at, last_error, delivered_at, slack_channel, slack_ts, event FROM outbox""",
        "DROP TABLE outbox",
        "ALTER TABLE outbox_rebuilt RENAME TO outbox",
        "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
        "CREATE INDEX outbox_key ON outbox (message_key, status)",
        "ALTER TABLE scheduler_runs ADD COLUMN interval_seconds REAL",
    ),
)

REQUESTER_IDENTITIES = Migration(
    6,
    "jobs and approvals keep who asked as an identity (slack:U1, os:alice, mcp:name), for four eyes and spend limits",
    (
        "ALTER TABLE jobs ADD COLUMN requested_by_identity TEXT",
        # Until now `requested_by` held face:id, and the terminal's ids were OS users.
        """UPDATE jobs SET requested_by_identity =
               CASE WHEN requested_by LIKE 'cli:%' THEN 'os:' || substr(requested_by, 5) ELSE requested_by END""",
        "CREATE INDEX jobs_created ON jobs (created_at)",
        "ALTER TABLE approvals ADD COLUMN requested_by_identity TEXT",
        """UPDATE approvals SET requested_by_identity =
               CASE requested_via WHEN 'cli' THEN 'os:' ELSE requested_via || ':' END || requested_by""",
    ),
)

MODEL_REGISTRY = Migration(
    7,
    "model registry: registered models, version cost, canaries behind aliases, a ledger naming face and approval,"
    " versions and ledger rows that cannot be rewritten",
    (
        """CREATE TABLE registered_models (
            name TEXT PRIMARY KEY,
            description TEXT,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """INSERT INTO registered_models (name, created_by, created_at)
           SELECT name, 'migration', min(created_at) FROM model_versions GROUP BY name""",
        "ALTER TABLE model_versions ADD COLUMN cost_usd REAL",
        "ALTER TABLE model_versions ADD COLUMN retired_at TEXT",
        "ALTER TABLE model_aliases ADD COLUMN canary_version_id TEXT REFERENCES model_versions (id)",
        """ALTER TABLE model_aliases ADD COLUMN canary_share INTEGER NOT NULL DEFAULT 0
               CHECK (canary_share BETWEEN 0 AND 100)""",
        "ALTER TABLE promotions ADD COLUMN move TEXT",
        "ALTER TABLE promotions ADD COLUMN face TEXT",
        "ALTER TABLE promotions ADD COLUMN approval_id TEXT REFERENCES approvals (id)",
        "ALTER TABLE promotions ADD COLUMN canary_version_id TEXT REFERENCES model_versions (id)",
        "ALTER TABLE promotions ADD COLUMN canary_share INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX promotions_alias ON promotions (model_name, alias, at)",
        # Provenance is never overwritten: a version's lineage is fixed once written (only its status moves),
        # and the ledger only grows.
        """CREATE TRIGGER model_versions_immutable
           BEFORE UPDATE OF id, name, version, provider, provider_model_id, job_id, dataset_version_id, base_model,
                            metrics, cost_usd, created_at ON model_versions
           BEGIN SELECT RAISE(ABORT, 'model versions are immutable: register a new version instead'); END""",
        """CREATE TRIGGER model_versions_kept BEFORE DELETE ON model_versions
           BEGIN SELECT RAISE(ABORT, 'model versions are never deleted: retire them instead'); END""",
        """CREATE TRIGGER promotions_no_update BEFORE UPDATE ON promotions
           BEGIN SELECT RAISE(ABORT, 'the promotions ledger is append-only'); END""",
        """CREATE TRIGGER promotions_no_delete BEFORE DELETE ON promotions
           BEGIN SELECT RAISE(ABORT, 'the promotions ledger is append-only'); END""",
    ),
)

APPROVAL_QUORUMS = Migration(
    8,
    "approvals keep what a decider reads (description, facts) and how many approvers they need; one vote per person",
    (
        "ALTER TABLE approvals ADD COLUMN description TEXT",
        "ALTER TABLE approvals ADD COLUMN facts TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE approvals ADD COLUMN approvals_needed INTEGER NOT NULL DEFAULT 1 CHECK (approvals_needed >= 1)",
        """CREATE TABLE approval_votes (
            approval_id TEXT NOT NULL REFERENCES approvals (id),
            person TEXT NOT NULL,
            voter TEXT NOT NULL,
            voter_identity TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (approval_id, person)
        )""",
    ),
)

WEBHOOKS = Migration(
    9,
    "outgoing webhooks: endpoints, one delivery per (event, URL), every attempt",
    (
        """CREATE TABLE webhook_endpoints (
            url TEXT PRIMARY KEY,
            active INTEGER NOT NULL DEFAULT 1,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE webhook_deliveries (
            id INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            url TEXT NOT NULL,
            body TEXT NOT NULL,
            summary TEXT NOT NULL,
            created_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead', 'discarded')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_status_code INTEGER,
            last_error TEXT,
            last_attempt_at TEXT,
            delivered_at TEXT,
            UNIQUE (event_id, url)
        )""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, url, next_attempt_at)",
        """CREATE TABLE webhook_attempts (
            id INTEGER PRIMARY KEY,
            delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id),
            at TEXT NOT NULL,
            status_code INTEGER,
            error TEXT,
            duration_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id)",
    ),
)

STAGED_ROLLOUTS = Migration(
    10,
    "staged rollouts: a plan of canary shares for a model alias, advanced by the scheduler after each hold",
    (
        """CREATE TABLE rollouts (
            id TEXT PRIMARY KEY,
            model_name TEXT NOT NULL REFERENCES registered_models (name),
            alias TEXT NOT NULL,
            version_id TEXT NOT NULL REFERENCES model_versions (id),
            stages TEXT NOT NULL,
            hold_seconds INTEGER NOT NULL CHECK (hold_seconds BETWEEN 60 AND 2592000),
            approval_mode TEXT NOT NULL CHECK (approval_mode IN ('plan', 'stage')),
            stage INTEGER NOT NULL DEFAULT 0 CHECK (stage >= 0),
            status TEXT NOT NULL CHECK (status IN ('waiting_approval', 'running', 'paused', 'completed',
                                                   'cancelled', 'superseded', 'halted')),
            approval_id TEXT REFERENCES approvals (id),
            plan_approval_id TEXT REFERENCES approvals (id),
            next_at TEXT,
            requested_by TEXT NOT NULL,
            requested_by_identity TEXT NOT NULL,
            requested_via TEXT NOT NULL,
            reason TEXT,
            status_reason TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        # One active rollout per alias: a second plan is refused until the first ends.
        """CREATE UNIQUE INDEX rollouts_active ON rollouts (model_name, alias)
           WHERE status IN ('waiting_approval', 'running', 'paused')""",
        "CREATE INDEX rollouts_due ON rollouts (status, next_at)",
    ),
)

DEPLOYMENTS = Migration(
    11,
    "provider deployments of model versions (on-demand or provisioned, their ARN and state), and approved alias"
    " changes waiting for one",
    (
        """CREATE TABLE deployments (
            id TEXT PRIMARY KEY,
            model_version_id TEXT NOT NULL REFERENCES model_versions (id),
            provider TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('on_demand', 'provisioned')),
            status TEXT NOT NULL CHECK (status IN ('creating', 'active', 'failed', 'deleting', 'deleted')),
            provider_model_id TEXT NOT NULL,
            provider_arn TEXT,
            provider_status TEXT,
            model_units INTEGER CHECK (model_units IS NULL OR model_units >= 1),
            hourly_usd REAL CHECK (hourly_usd IS NULL OR hourly_usd >= 0),
            commitment TEXT,
            approval_id TEXT REFERENCES approvals (id),
            error TEXT,
            poll_failures INTEGER NOT NULL DEFAULT 0,
            next_poll_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        # At most one deployment per version serves or is on its way; failed and deleted ones stay as history.
        """CREATE UNIQUE INDEX deployments_live ON deployments (model_version_id)
           WHERE status IN ('creating', 'active', 'deleting')""",
        "CREATE INDEX deployments_due ON deployments (status, next_poll_at)",
        """CREATE TABLE deployment_waits (
            approval_id TEXT NOT NULL REFERENCES approvals (id),
            model_version_id TEXT NOT NULL REFERENCES model_versions (id),
            change TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('waiting', 'applied', 'dropped', 'failed')),
            detail TEXT,
            created_at TEXT NOT NULL,
            resolved_at TEXT,
            PRIMARY KEY (approval_id, model_version_id)
        )""",
        "CREATE INDEX deployment_waits_open ON deployment_waits (status, model_version_id)",
    ),
)

FEEDBACK_OUTCOMES = Migration(
    12,
    "feedback outcomes: the registry version that served each draft and the arm of its alias (stable or canary)",
    (
        "ALTER TABLE feedback ADD COLUMN model_version TEXT",
        "ALTER TABLE feedback ADD COLUMN arm TEXT CHECK (arm IS NULL OR arm IN ('stable', 'canary'))",
        # Outcomes per version and arm over time; events that name no version stay out of it.
        """CREATE INDEX feedback_outcomes ON feedback (model_version, arm, created_at)
           WHERE model_version IS NOT NULL""",
    ),
)

OFFLINE_EVALUATIONS = Migration(
    13,
    "offline evaluations: what was compared (asked and resolved), the judge, the cost cap and spend, progress,"
    " who runs it; per-example outputs, scores and judge answers",
    (
        "ALTER TABLE evaluations ADD COLUMN candidate TEXT",
        "ALTER TABLE evaluations ADD COLUMN candidate_ref TEXT",
        "ALTER TABLE evaluations ADD COLUMN baseline TEXT",
        "ALTER TABLE evaluations ADD COLUMN baseline_ref TEXT",
        "ALTER TABLE evaluations ADD COLUMN baseline_version_id TEXT REFERENCES model_versions (id)",
        "ALTER TABLE evaluations ADD COLUMN judge TEXT",
        "ALTER TABLE evaluations ADD COLUMN split TEXT",
        "ALTER TABLE evaluations ADD COLUMN max_cost_usd REAL CHECK (max_cost_usd IS NULL OR max_cost_usd > 0)",
        "ALTER TABLE evaluations ADD COLUMN example_limit INTEGER CHECK (example_limit IS NULL OR example_limit >= 1)",
        "ALTER TABLE evaluations ADD COLUMN max_new_tokens INTEGER",
        "ALTER TABLE evaluations ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0",
        "ALTER TABLE evaluations ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE evaluations ADD COLUMN done INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE evaluations ADD COLUMN total INTEGER",
        "ALTER TABLE evaluations ADD COLUMN status_reason TEXT",
        "ALTER TABLE evaluations ADD COLUMN requested_via TEXT",
        "ALTER TABLE evaluations ADD COLUMN idempotency_key TEXT",
        "ALTER TABLE evaluations ADD COLUMN runner TEXT",
        "ALTER TABLE evaluations ADD COLUMN started_at TEXT",
        "ALTER TABLE evaluations ADD COLUMN updated_at TEXT",
        "CREATE UNIQUE INDEX evaluations_key ON evaluations (idempotency_key) WHERE idempotency_key IS NOT NULL",
        "CREATE INDEX evaluations_status ON evaluations (status, created_at)",
        "CREATE INDEX evaluations_version ON evaluations (model_version_id, status, finished_at)",
        "ALTER TABLE eval_results ADD COLUMN arm TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE eval_results ADD COLUMN ordinal INTEGER",
        "ALTER TABLE eval_results ADD COLUMN output TEXT",
        "ALTER TABLE eval_results ADD COLUMN input_tokens INTEGER",
        "ALTER TABLE eval_results ADD COLUMN output_tokens INTEGER",
        "ALTER TABLE eval_results ADD COLUMN latency_ms REAL",
        "ALTER TABLE eval_results ADD COLUMN cost_usd REAL",
        # One row per example, kind of row and arm: an example is stored whole or not at all, never twice.
        "CREATE UNIQUE INDEX eval_results_row ON eval_results (evaluation_id, feedback_id, metric, arm)",
    ),
)

ONLINE_EXPERIMENTS = Migration(
    14,
    "online A/B experiments: what they compare (an alias's canary or two templates), their metrics, split, alpha"
    " and verdict; what the canary guard did about each canary it found worse, once per canary",
    (
        "ALTER TABLE experiments ADD COLUMN kind TEXT NOT NULL DEFAULT 'canary' CHECK (kind IN ('canary', 'template'))",
        "ALTER TABLE experiments ADD COLUMN model_name TEXT",
        "ALTER TABLE experiments ADD COLUMN alias TEXT",
        "ALTER TABLE experiments ADD COLUMN control_template TEXT",
        "ALTER TABLE experiments ADD COLUMN treatment_template TEXT",
        "ALTER TABLE experiments ADD COLUMN secondary_metrics TEXT NOT NULL DEFAULT '[]'",
        # The treatment's configured share of a template experiment; a canary's comes from the ledger.
        "ALTER TABLE experiments ADD COLUMN split REAL CHECK (split IS NULL OR (split > 0 AND split < 1))",
        "ALTER TABLE experiments ADD COLUMN alpha REAL NOT NULL DEFAULT 0.05 CHECK (alpha > 0 AND alpha < 1)",
        "ALTER TABLE experiments ADD COLUMN effect REAL NOT NULL DEFAULT 0.05 CHECK (effect > 0 AND effect < 1)",
        "ALTER TABLE experiments ADD COLUMN started_at TEXT",
        "ALTER TABLE experiments ADD COLUMN ended_by TEXT",
        "ALTER TABLE experiments ADD COLUMN verdict TEXT",
        "ALTER TABLE experiments ADD COLUMN reason TEXT",
        "CREATE INDEX experiments_created ON experiments (created_at)",
        # One running experiment per canary alias, and per pair of templates of an agent.
        """CREATE UNIQUE INDEX experiments_running_canary ON experiments (model_name, alias)
           WHERE status = 'running' AND kind = 'canary'""",
        """CREATE UNIQUE INDEX experiments_running_template ON experiments (name, control_template, treatment_template)
           WHERE status = 'running' AND kind = 'template'""",
        """CREATE TABLE canary_guard_actions (
            model_name TEXT NOT NULL,
            alias TEXT NOT NULL,
            canary_version_id TEXT NOT NULL REFERENCES model_versions (id),
            since TEXT NOT NULL,
            action TEXT NOT NULL CHECK (action IN ('proposed', 'performed', 'announced')),
            approval_id TEXT REFERENCES approvals (id),
            evidence TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (model_name, alias, canary_version_id, since)
        )""",
    ),
)

ANALYTICS = Migration(
    15,
    "analytics: daily rollups of feedback, per-agent phrase counts of edits, their watermarks; alerts keep their"
    " evidence and a dedupe key (one open alert per subject)",
    (
        # How far each incremental reader of `feedback` has got (its last rowid), and what it read it with.
        """CREATE TABLE analytics_watermarks (
            name TEXT PRIMARY KEY,
            last_rowid INTEGER NOT NULL,
            detail TEXT
        )""",
        """CREATE TABLE analytics_rollups (
            agent TEXT NOT NULL,
            day TEXT NOT NULL,
            model_version TEXT NOT NULL,
            intent TEXT NOT NULL,
            template TEXT NOT NULL,
            events INTEGER NOT NULL,
            acceptance_n INTEGER NOT NULL,
            acceptance_sum REAL NOT NULL,
            acceptance_sumsq REAL NOT NULL,
            unedited INTEGER NOT NULL,
            rated INTEGER NOT NULL,
            rating_sum REAL NOT NULL,
            thumbs_up INTEGER NOT NULL,
            thumbs_down INTEGER NOT NULL,
            latency_n INTEGER NOT NULL,
            latency_sum REAL NOT NULL,
            cost_n INTEGER NOT NULL,
            cost_sum REAL NOT NULL,
            PRIMARY KEY (agent, day, model_version, intent, template)
        ) WITHOUT ROWID""",
        "CREATE INDEX analytics_rollups_day ON analytics_rollups (day)",
        """CREATE TABLE analytics_phrase_totals (
            agent TEXT PRIMARY KEY,
            edited INTEGER NOT NULL,
            unedited INTEGER NOT NULL,
            sampled_edited INTEGER NOT NULL,
            sampled_unedited INTEGER NOT NULL
        )""",
        """CREATE TABLE analytics_phrases (
            agent TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('deleted', 'added')),
            phrase TEXT NOT NULL,
            support INTEGER NOT NULL,
            slack INTEGER NOT NULL,
            present_edited INTEGER NOT NULL,
            present_unedited INTEGER NOT NULL,
            base_edited INTEGER NOT NULL,
            base_unedited INTEGER NOT NULL,
            example TEXT NOT NULL,
            PRIMARY KEY (agent, kind, phrase)
        ) WITHOUT ROWID""",
        "ALTER TABLE alerts ADD COLUMN dedupe_key TEXT",
        "ALTER TABLE alerts ADD COLUMN evidence TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE alerts ADD COLUMN checked_at TEXT",
        "CREATE UNIQUE INDEX alerts_open ON alerts (dedupe_key) WHERE resolved_at IS NULL AND dedupe_key IS NOT NULL",
    ),
)

CLOSED_LOOP = Migration(
    16,
    "closed loop: runs that link a retraining request to its job, version, evaluation, canary and outcome, their"
    " steps; messages posted as replies in another message's thread",
    (
        """CREATE TABLE loop_runs (
            id TEXT PRIMARY KEY,
            model_name TEXT NOT NULL,
            alias TEXT NOT NULL,
            step TEXT NOT NULL CHECK (step IN ('retrain_approval', 'training', 'evaluating', 'canary_approval',
                                               'canary', 'rollback_approval', 'done')),
            outcome TEXT CHECK (outcome IN ('promoted', 'rolled_back', 'not_deployed', 'rejected', 'failed',
                                            'cancelled')),
            reason TEXT,
            retrain_approval_id TEXT REFERENCES approvals (id),
            dataset_version_id TEXT,
            job_id TEXT REFERENCES jobs (id),
            version_id TEXT REFERENCES model_versions (id),
            evaluation_id TEXT,
            canary_approval_id TEXT REFERENCES approvals (id),
            rollout_id TEXT,
            rollback_approval_id TEXT REFERENCES approvals (id),
            attempt INTEGER NOT NULL DEFAULT 1,
            requested_by TEXT NOT NULL,
            revision INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        # One run in progress per model; one run per retraining request.
        "CREATE UNIQUE INDEX loop_runs_active ON loop_runs (model_name) WHERE outcome IS NULL",
        "CREATE UNIQUE INDEX loop_runs_retrain ON loop_runs (retrain_approval_id) WHERE retrain_approval_id IS NOT NULL",
        "CREATE INDEX loop_runs_created ON loop_runs (created_at)",
        """CREATE TABLE loop_steps (
            run_id TEXT NOT NULL REFERENCES loop_runs (id),
            seq INTEGER NOT NULL,
            step TEXT NOT NULL,
            text TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE message_threads (
            message_key TEXT PRIMARY KEY,
            thread_key TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
)

WEEKLY_DIGESTS = Migration(
    17,
    "weekly digests: one per ISO week, with the notification that posts it",
    (
        """CREATE TABLE digests (
            week TEXT PRIMARY KEY,
            outbox_id INTEGER REFERENCES outbox (id),
            page TEXT,
            headline TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    INFRASTRUCTURE, DOMAIN, TYPED_EVENTS, COUNTERS, DELIVERY_STATES, REQUESTER_IDENTITIES, MODEL_REGISTRY,
    APPROVAL_QUORUMS, WEBHOOKS, STAGED_ROLLOUTS, DEPLOYMENTS, FEEDBACK_OUTCOMES, OFFLINE_EVALUATIONS,
    ONLINE_EXPERIMENTS, ANALYTICS, CLOSED_LOOP, WEEKLY_DIGESTS,
)  # fmt: skip
LATEST = MIGRATIONS[-1].version

assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1)), "migration versions must be 1..N"
