-- bananabot schema v1: jobs, results, an append-only ledger, budget caps, channel policies.
-- Times are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ' so they compare as strings.

CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT NOT NULL UNIQUE,
    platform TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    origin_json TEXT NOT NULL,
    request_json TEXT NOT NULL,
    action TEXT NOT NULL,
    parent_job_id TEXT REFERENCES jobs(id),
    parent_index INTEGER,
    provider TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    provider_task_id TEXT,
    fair_round INTEGER NOT NULL,
    estimate_micros INTEGER NOT NULL CHECK (estimate_micros >= 0),
    cost_micros INTEGER NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    error_code TEXT,
    error_message TEXT,
    notices_json TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX jobs_claim ON jobs (provider, status, fair_round, seq);
CREATE INDEX jobs_status ON jobs (status, fair_round, seq);
CREATE INDEX jobs_user_queue ON jobs (provider, status, workspace_id, user_id, fair_round);
CREATE INDEX jobs_user_recent ON jobs (workspace_id, user_id, seq);
CREATE INDEX jobs_parent ON jobs (parent_job_id);

CREATE TABLE results (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    idx INTEGER NOT NULL,
    media_key TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    seed INTEGER,
    cost_micros INTEGER NOT NULL,
    nsfw INTEGER NOT NULL,
    withheld INTEGER NOT NULL,
    provider_url TEXT,
    PRIMARY KEY (job_id, idx)
);

-- One reserve per job, then exactly one release and (on success) one charge.
-- Spend under a cap = SUM(amount) of a scope's entries whose job was reserved in the period.
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    kind TEXT NOT NULL CHECK (kind IN ('reserve', 'release', 'charge')),
    amount_micros INTEGER NOT NULL,
    provider TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    period_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (job_id, kind)
);
-- Covering indexes: a cap's sum reads only the index, never the table.
CREATE INDEX ledger_workspace ON ledger (workspace_id, period_at, kind, amount_micros);
CREATE INDEX ledger_channel ON ledger (workspace_id, channel_id, period_at, kind, amount_micros);
CREATE INDEX ledger_user ON ledger (workspace_id, user_id, period_at, kind, amount_micros);

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;

CREATE TABLE budget_caps (
    scope TEXT NOT NULL CHECK (scope IN ('user', 'channel', 'workspace')),
    workspace_id TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    period TEXT NOT NULL CHECK (period IN ('day', 'week', 'month', 'total')),
    limit_micros INTEGER NOT NULL CHECK (limit_micros >= 0),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (scope, workspace_id, scope_id, period)
);

-- channel_id '' holds the workspace-wide policy.
CREATE TABLE channel_policies (
    workspace_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    max_tolerance TEXT NOT NULL,
    force_check_content INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, channel_id)
);
