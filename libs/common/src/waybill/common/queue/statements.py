"""Every statement of the work queue, as driver (``$n``) SQL: the queue sits on the hot path of
every charge, so each step is one statement (see ADR 0009 for why they look the way they do).

Effective priority (aging): ``priority + floor(seconds due / aging_s)``; a queue without aging
passes a huge ``aging_s``. A lapsed lease is just a ``running`` job whose ``run_at`` (the end
of its lease) has passed, so the due predicate also recovers a crashed worker's jobs.
"""

from __future__ import annotations

DUE = "status IN ('queued', 'running') AND run_at <= $2"
EFFECTIVE_PRIORITY = "priority + floor(extract(epoch FROM ($2 - run_at))::float8 / $3::float8)"

ENQUEUE = """
INSERT INTO queue_jobs (queue, tenant_id, key, payload, priority, status, attempts, run_at,
                        deadline, enqueued_at)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10)
RETURNING id
"""

# A keyed queue's claims go through queue_keys: the key row exists before its first job. An
# existing row is locked (a no-op update), not skipped: the prune of idle keys (PRUNE_KEYS)
# must wait for this transaction, or it could delete the row under a job about to commit.
ENQUEUE_KEYED = """
WITH key_row AS (
    INSERT INTO queue_keys (queue, key, next_at) VALUES ($1, $3, $10)
    ON CONFLICT (queue, key) DO UPDATE SET next_at = queue_keys.next_at
)
""" + ENQUEUE.strip()

# Many jobs in one statement (arrays, one element per job).
ENQUEUE_MANY = """
INSERT INTO queue_jobs (queue, tenant_id, key, payload, priority, status, attempts, run_at,
                        deadline, enqueued_at)
SELECT $1, t.tenant_id, t.key, t.payload::jsonb, t.priority, 'queued', 0, t.run_at,
       t.deadline, $7
FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[],
            $8::timestamptz[]) AS t(tenant_id, key, payload, priority, run_at, deadline)
"""
ENQUEUE_MANY_KEYED = """
WITH key_rows AS (
    INSERT INTO queue_keys (queue, key, next_at)
    SELECT DISTINCT $1, k, $7::timestamptz FROM unnest($3::text[]) AS k
    ON CONFLICT (queue, key) DO UPDATE SET next_at = queue_keys.next_at
)
""" + ENQUEUE_MANY.strip()

NOTIFY = "SELECT pg_notify($1, $2)"

# Unkeyed: the best due jobs, skipping those another claimer holds. The outer status check is
# re-evaluated on the newest row version should the row be updated while we wait for it.
CLAIM = f"""
UPDATE queue_jobs AS j
SET status = 'running', attempts = j.attempts + 1, run_at = $4
FROM (
    SELECT id FROM queue_jobs
    WHERE queue = $1 AND {DUE}
    ORDER BY {EFFECTIVE_PRIORITY} DESC, run_at, id
    LIMIT $5
    FOR UPDATE SKIP LOCKED
) AS due
WHERE j.id = due.id AND j.status IN ('queued', 'running')
RETURNING j.id, j.key, j.tenant_id, j.payload, j.attempts, j.priority, j.enqueued_at, j.deadline
"""

# Keyed, step 1: lock the keys to serve now -- free (not busy, rate allows), with a due job,
# the one with the most urgent job first, then the least recently served (fairness). The keys
# come from the due jobs (the due index), never from a scan of every key the queue has seen.
# Locking rechecks busy_until/next_at on the newest row version, so a key another worker has
# just claimed is never taken twice; SKIP LOCKED passes over keys being claimed right now.
CLAIM_KEYS = f"""
SELECT k.key FROM queue_keys AS k
JOIN (SELECT key, max({EFFECTIVE_PRIORITY}) AS urgency FROM queue_jobs
      WHERE queue = $1 AND {DUE} GROUP BY key) AS due ON due.key = k.key
WHERE k.queue = $1 AND k.next_at <= $2 AND (k.busy_until IS NULL OR k.busy_until <= $2)
ORDER BY due.urgency DESC, k.served_at NULLS FIRST, k.key
LIMIT $4
FOR UPDATE OF k SKIP LOCKED
"""

# Keyed, step 2: the best due job of each locked key; a lapsed lease first (it was the key's
# job in progress).
CLAIM_OF_KEYS = f"""
UPDATE queue_jobs AS j
SET status = 'running', attempts = j.attempts + 1, run_at = $4
FROM (
    SELECT DISTINCT ON (key) id FROM queue_jobs
    WHERE queue = $1 AND key = ANY($5::text[]) AND {DUE}
    ORDER BY key, {EFFECTIVE_PRIORITY} DESC, status = 'running' DESC, run_at, id
) AS due
WHERE j.id = due.id AND j.status IN ('queued', 'running')
RETURNING j.id, j.key, j.tenant_id, j.payload, j.attempts, j.priority, j.enqueued_at, j.deadline
"""

# Ordered queues: a key's jobs run in the order they were enqueued. Its head (the oldest job not
# done or failed) is the only one that may run, so a job waiting for its retry holds back the
# later jobs of its key (a webhook message of an order is not overtaken by the next one).
_HEADS = """
SELECT DISTINCT ON (key) key, id, run_at, priority FROM queue_jobs
WHERE queue = $1 AND status IN ('queued', 'running')
ORDER BY key, id
"""
CLAIM_KEYS_ORDERED = f"""
SELECT k.key FROM queue_keys AS k
JOIN ({_HEADS}) AS head ON head.key = k.key
WHERE k.queue = $1 AND head.run_at <= $2
  AND k.next_at <= $2 AND (k.busy_until IS NULL OR k.busy_until <= $2)
ORDER BY head.priority + floor(extract(epoch FROM ($2 - head.run_at))::float8 / $3::float8) DESC,
         k.served_at NULLS FIRST, k.key
LIMIT $4
FOR UPDATE OF k SKIP LOCKED
"""
CLAIM_OF_KEYS_ORDERED = """
UPDATE queue_jobs AS j
SET status = 'running', attempts = j.attempts + 1, run_at = $3
FROM (
    SELECT DISTINCT ON (key) id, run_at FROM queue_jobs
    WHERE queue = $1 AND key = ANY($4::text[]) AND status IN ('queued', 'running')
    ORDER BY key, id
) AS head
WHERE j.id = head.id AND head.run_at <= $2 AND j.status IN ('queued', 'running')
RETURNING j.id, j.key, j.tenant_id, j.payload, j.attempts, j.priority, j.enqueued_at, j.deadline
"""

# Keyed, step 3: the served keys -- busy for the lease (serial), next start (rate limit).
SERVE_KEYS = """
UPDATE queue_keys
SET served_at = $2::timestamptz, next_at = $2::timestamptz + make_interval(secs => $3),
    busy_until = $4
WHERE queue = $1 AND key = ANY($5::text[])
"""

# Outcomes: fenced by the claim's attempts, so a worker whose lease lapsed changes nothing.
COMPLETE = """
UPDATE queue_jobs SET status = 'done', finished_at = $3, last_error = NULL
WHERE id = $1 AND attempts = $2 AND status = 'running'
RETURNING key
"""
RESCHEDULE = """
UPDATE queue_jobs SET status = 'queued', run_at = $3, last_error = $4
WHERE id = $1 AND attempts = $2 AND status = 'running'
RETURNING key
"""
FAIL = """
UPDATE queue_jobs SET status = 'failed', finished_at = $3, last_error = $4
WHERE id = $1 AND attempts = $2 AND status = 'running'
RETURNING key
"""
FREE_KEY = "UPDATE queue_keys SET busy_until = NULL WHERE queue = $1 AND key = $2"

NEXT_DUE = """
SELECT min(run_at) FROM queue_jobs WHERE queue = $1 AND status IN ('queued', 'running')
"""

# Idle keys (no job queued or running, not busy, not rate-held) are forgotten in two steps of
# one transaction: lock the candidates (skipping keys an enqueue holds), then, under a fresh
# snapshot, delete those that still have no job. An enqueue that comes after the lock waits
# for it and then inserts the key again; one that came before shows its job to step 2.
LOCK_IDLE_KEYS = """
SELECT k.key FROM queue_keys AS k
WHERE k.queue = $1 AND (k.busy_until IS NULL OR k.busy_until < $2) AND k.next_at < $2
  AND coalesce(k.served_at, k.next_at) < $2
  AND NOT EXISTS (SELECT 1 FROM queue_jobs AS j
                  WHERE j.queue = $1 AND j.key = k.key AND j.status IN ('queued', 'running'))
LIMIT 5000
FOR UPDATE OF k SKIP LOCKED
"""
DELETE_IDLE_KEYS = """
DELETE FROM queue_keys AS k
WHERE k.queue = $1 AND k.key = ANY($2::text[])
  AND NOT EXISTS (SELECT 1 FROM queue_jobs AS j
                  WHERE j.queue = $1 AND j.key = k.key AND j.status IN ('queued', 'running'))
"""

PRUNE = """
DELETE FROM queue_jobs
WHERE id IN (SELECT id FROM queue_jobs
             WHERE queue = $1 AND status = 'done' AND finished_at < $2 LIMIT 5000)
"""

STATS = """
SELECT queue,
       count(*) FILTER (WHERE status = 'queued' OR (status = 'running' AND run_at <= $2))
           AS depth,
       count(*) FILTER (WHERE status = 'running' AND run_at > $2) AS running,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       extract(epoch FROM $2 - min(run_at) FILTER (WHERE status IN ('queued', 'running')
                                                     AND run_at <= $2)) AS oldest_waiting_s
FROM queue_jobs
WHERE queue = ANY($1::text[]) AND status IN ('queued', 'running', 'failed')
GROUP BY queue
"""

RECENT = """
SELECT id, queue, key, status, attempts, priority, run_at, enqueued_at, finished_at, last_error
FROM queue_jobs
WHERE tenant_id = $1 AND queue = ANY($2::text[])
ORDER BY id DESC
LIMIT $3
"""
# A process without tenants (the sandbox) shows its last jobs, whoever they were for.
RECENT_ANY_TENANT = """
SELECT id, queue, key, status, attempts, priority, run_at, enqueued_at, finished_at, last_error
FROM queue_jobs
WHERE queue = ANY($1::text[])
ORDER BY id DESC
LIMIT $2
"""
