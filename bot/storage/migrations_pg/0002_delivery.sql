-- Delivery outbox: a finished job is posted by a process whose adapter serves its platform,
-- once; delivered_at marks it posted, delivery_lease_until stops two processes posting it.
ALTER TABLE jobs ADD COLUMN delivered_at TIMESTAMPTZ;
ALTER TABLE jobs ADD COLUMN delivery_lease_until TIMESTAMPTZ;
-- Jobs that ended before this version were delivered by the version that ran them.
UPDATE jobs SET delivered_at = updated_at WHERE status IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX jobs_undelivered ON jobs (platform, status, seq) WHERE delivered_at IS NULL;
