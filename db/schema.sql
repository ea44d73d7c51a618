-- ralph's task store. Idempotent: applied automatically on first use (and by
-- `ralph.sh init` and the container entrypoint). One transaction, serialized
-- by an advisory lock so concurrent first uses don't race on the catalog.
BEGIN;
SELECT pg_advisory_xact_lock(7426001);

CREATE TABLE IF NOT EXISTS tasks (
  id               text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._/-]*$'),
  description      text NOT NULL CHECK (btrim(description) <> ''),
  category         text NOT NULL DEFAULT 'feat'
                   CHECK (category IN ('bug', 'feat', 'test', 'refactor', 'doc')),
  priority         smallint NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 3),
  status           text NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'active', 'done', 'deleted')),
  spec_ref         text,
  ref              text,
  steps            text[] NOT NULL DEFAULT '{}',
  result           jsonb,
  assignee         text,
  lease_expires_at timestamptz,
  retry_count      integer NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  deleted_at       timestamptz
);

-- What `claim` scans: live tasks in urgency order.
CREATE INDEX IF NOT EXISTS tasks_claim_order ON tasks (priority, created_at, id)
  WHERE deleted_at IS NULL AND status IN ('open', 'active');

CREATE TABLE IF NOT EXISTS task_dependencies (
  task_id    text NOT NULL REFERENCES tasks (id),
  blocked_by text NOT NULL REFERENCES tasks (id),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (task_id, blocked_by),
  CHECK (task_id <> blocked_by)
);

CREATE TABLE IF NOT EXISTS agents (
  id                text PRIMARY KEY,
  pid               integer,
  hostname          text,
  started_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stopped')),
  last_heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- updated_at on every write.
CREATE OR REPLACE FUNCTION ralph_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := clock_timestamp();
  RETURN NEW;
END $$;

-- A done task never changes status again (whatever client writes to it).
CREATE OR REPLACE FUNCTION ralph_done_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'done' AND NEW.status IS DISTINCT FROM 'done' THEN
    RAISE EXCEPTION 'task % is done: a done task cannot change status', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER tasks_touch BEFORE UPDATE ON tasks
  FOR EACH ROW EXECUTE FUNCTION ralph_touch_updated_at();
CREATE OR REPLACE TRIGGER tasks_done_is_final BEFORE UPDATE ON tasks
  FOR EACH ROW EXECUTE FUNCTION ralph_done_is_final();
CREATE OR REPLACE TRIGGER agents_touch BEFORE UPDATE ON agents
  FOR EACH ROW EXECUTE FUNCTION ralph_touch_updated_at();

-- Claims the most urgent (then oldest) task that is open, or active with an
-- expired lease, whose blockers are all done or deleted. One statement:
-- the candidate row is locked with SKIP LOCKED, so concurrent claimers never
-- get the same task and never wait for each other.
CREATE OR REPLACE FUNCTION ralph_claim(p_agent text, p_lease_seconds integer, p_task text DEFAULT NULL)
RETURNS SETOF tasks LANGUAGE sql AS $$
  WITH candidate AS (
    SELECT t.id
    FROM tasks t
    WHERE t.deleted_at IS NULL
      AND (t.status = 'open' OR (t.status = 'active' AND t.lease_expires_at < clock_timestamp()))
      AND (p_task IS NULL OR t.id = p_task)
      AND NOT EXISTS (
        SELECT 1 FROM task_dependencies d JOIN tasks b ON b.id = d.blocked_by
        WHERE d.task_id = t.id AND b.status NOT IN ('done', 'deleted') AND b.deleted_at IS NULL)
    ORDER BY t.priority, t.created_at, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
  )
  UPDATE tasks t
  SET status = 'active',
      assignee = p_agent,
      lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds),
      retry_count = t.retry_count + CASE WHEN t.status = 'active' THEN 1 ELSE 0 END
  FROM candidate c
  WHERE t.id = c.id
  RETURNING t.*;
$$;

COMMIT;
