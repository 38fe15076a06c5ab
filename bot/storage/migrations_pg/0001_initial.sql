-- bananabot PostgreSQL schema v1: the same tables and rules as the SQLite schema
-- (bot/storage/migrations), with native types: times are timestamptz (UTC in, UTC out),
-- money is BIGINT micro-dollars, JSON is jsonb, flags are boolean.
-- Applied by bot.storage.postgres in one transaction under an advisory lock.

CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT NOT NULL UNIQUE,
    platform TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    origin_json JSONB NOT NULL,
    request_json JSONB NOT NULL,
    action TEXT NOT NULL,
    parent_job_id TEXT REFERENCES jobs (id),
    parent_index INTEGER,
    provider TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    provider_task_id TEXT,
    fair_round BIGINT NOT NULL,
    estimate_micros BIGINT NOT NULL CHECK (estimate_micros >= 0),
    cost_micros BIGINT NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    error_code TEXT,
    error_message TEXT,
    notices_json JSONB NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    -- Delivery outbox: a finished job is posted once, by a process whose adapter serves its
    -- platform; delivered_at marks it posted, delivery_lease_until keeps a second process off.
    delivered_at TIMESTAMPTZ,
    delivery_lease_until TIMESTAMPTZ
);
CREATE INDEX jobs_undelivered ON jobs (platform, status, seq) WHERE delivered_at IS NULL;
-- The queue is the small part of the table: partial indexes keep claims off finished jobs.
CREATE INDEX jobs_claim ON jobs (provider, fair_round, seq) WHERE status = 'queued';
CREATE INDEX jobs_queue ON jobs (fair_round, seq) WHERE status = 'queued';
CREATE INDEX jobs_user_queue ON jobs (provider, workspace_id, user_id, fair_round)
    WHERE status = 'queued';
CREATE INDEX jobs_status ON jobs (status, seq);
CREATE INDEX jobs_user_recent ON jobs (workspace_id, user_id, seq);
CREATE INDEX jobs_parent ON jobs (parent_job_id);

CREATE TABLE results (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    idx INTEGER NOT NULL,
    media_key TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    seed BIGINT,
    cost_micros BIGINT NOT NULL,
    nsfw BOOLEAN NOT NULL,
    withheld BOOLEAN NOT NULL,
    provider_url TEXT,
    PRIMARY KEY (job_id, idx)
);

-- One reserve per job, then exactly one release and (on success) one charge.
-- Spend under a cap = SUM(amount) of a scope's entries whose job was reserved in the period.
CREATE TABLE ledger (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    kind TEXT NOT NULL CHECK (kind IN ('reserve', 'release', 'charge')),
    amount_micros BIGINT NOT NULL,
    provider TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    period_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (job_id, kind)
);
-- Covering indexes: a cap's sum reads only the index (index-only scans), never the table.
CREATE INDEX ledger_workspace ON ledger (workspace_id, period_at) INCLUDE (kind, amount_micros);
CREATE INDEX ledger_channel ON ledger (workspace_id, channel_id, period_at)
    INCLUDE (kind, amount_micros);
CREATE INDEX ledger_user ON ledger (workspace_id, user_id, period_at)
    INCLUDE (kind, amount_micros);

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only' USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER ledger_no_update_or_delete BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

CREATE TABLE budget_caps (
    scope TEXT NOT NULL CHECK (scope IN ('user', 'channel', 'workspace')),
    workspace_id TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    period TEXT NOT NULL CHECK (period IN ('day', 'week', 'month', 'total')),
    limit_micros BIGINT NOT NULL CHECK (limit_micros >= 0),
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, workspace_id, scope_id, period)
);

-- channel_id '' holds the workspace-wide policy.
CREATE TABLE channel_policies (
    workspace_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    max_tolerance TEXT NOT NULL,
    force_check_content BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, channel_id)
);

-- What counts against each cap in each period, kept in the same transaction as every
-- ledger append: a cache of the ledger's sums (the ledger stays the truth; see
-- PostgresStore.verify_totals), so a reservation reads one row instead of summing a period.
-- period_start is '-infinity' for total caps.
CREATE TABLE cap_totals (
    scope TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    spent_micros BIGINT NOT NULL DEFAULT 0,
    held_micros BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, workspace_id, scope_id, period, period_start)
);
