-- What counts against each cap in each period, kept in the same transaction as every
-- ledger append: a cache of the ledger's sums (the ledger stays the truth; see
-- SqliteStore.verify_totals), so a reservation reads one row instead of summing a period.
-- period_start is '' for total caps.
CREATE TABLE cap_totals (
    scope TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start TEXT NOT NULL,
    spent_micros INTEGER NOT NULL DEFAULT 0,
    held_micros INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, workspace_id, scope_id, period, period_start)
);
