-- ralph's task store. Idempotent (CREATE … IF NOT EXISTS, CREATE OR
-- REPLACE): applied automatically on first use, by `task init`, `ralph.sh
-- init` and the container entrypoint. One transaction, serialized by an
-- advisory lock so concurrent first uses don't race on the catalog.
SET client_min_messages = warning;
BEGIN;
DO $$ BEGIN PERFORM pg_advisory_xact_lock(7426001); END $$;

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
  retry_count      integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  deleted_at       timestamptz,
  -- An active task always has a holder and a lease.
  CHECK (status <> 'active' OR (assignee IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- What `claim` and `peek` scan: live tasks in urgency order.
CREATE INDEX IF NOT EXISTS tasks_claim_order ON tasks (priority, created_at, id)
  WHERE deleted_at IS NULL AND status IN ('open', 'active');

CREATE TABLE IF NOT EXISTS task_dependencies (
  task_id    text NOT NULL REFERENCES tasks (id),
  blocked_by text NOT NULL REFERENCES tasks (id),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (task_id, blocked_by),
  CHECK (task_id <> blocked_by)
);
CREATE INDEX IF NOT EXISTS task_dependencies_blocked_by ON task_dependencies (blocked_by);

CREATE TABLE IF NOT EXISTS agents (
  id                text PRIMARY KEY,
  pid               integer,
  hostname          text,
  started_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stopped')),
  last_heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- updated_at moves on every write, whatever client writes: unless the
-- writer itself set it to a time in this transaction, later than before
-- (as `task` does), the trigger sets it. (The check is the triggers' WHEN
-- clause, so `task`'s writes skip the PL/pgSQL call: a claim is cheaper.)
CREATE OR REPLACE FUNCTION ralph_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := clock_timestamp();
  RETURN NEW;
END $$;

-- A done task never changes status again, whatever client writes to it
-- (the trigger's WHEN clause picks the offending updates).
CREATE OR REPLACE FUNCTION ralph_done_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'task % is done: a done task cannot change status', OLD.id
    USING ERRCODE = 'check_violation';
END $$;

-- No blocker cycles: a new dependency may not close a loop. Writers of
-- dependencies are serialized by an advisory lock, and the check runs after
-- it (a fresh snapshot), so two concurrent blocks can't make a cycle that
-- neither of them saw.
CREATE OR REPLACE FUNCTION ralph_no_blocker_cycle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7426002);
  IF EXISTS (
    WITH RECURSIVE upstream(id) AS (
      SELECT NEW.blocked_by
      UNION
      SELECT d.blocked_by FROM task_dependencies d JOIN upstream u ON d.task_id = u.id)
    SELECT 1 FROM upstream WHERE id = NEW.task_id) THEN
    RAISE EXCEPTION 'blocking % by % would make a cycle (% already waits on %): drop one of the dependencies with `task unblock`',
      NEW.task_id, NEW.blocked_by, NEW.blocked_by, NEW.task_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER tasks_touch BEFORE UPDATE ON tasks
  FOR EACH ROW WHEN (NEW.updated_at IS NULL OR NEW.updated_at < now() OR NEW.updated_at <= OLD.updated_at)
  EXECUTE FUNCTION ralph_touch_updated_at();
CREATE OR REPLACE TRIGGER tasks_done_is_final BEFORE UPDATE ON tasks
  FOR EACH ROW WHEN (OLD.status = 'done' AND NEW.status IS DISTINCT FROM 'done')
  EXECUTE FUNCTION ralph_done_is_final();
CREATE OR REPLACE TRIGGER agents_touch BEFORE UPDATE ON agents
  FOR EACH ROW WHEN (NEW.updated_at IS NULL OR NEW.updated_at < now() OR NEW.updated_at <= OLD.updated_at)
  EXECUTE FUNCTION ralph_touch_updated_at();
CREATE OR REPLACE TRIGGER task_dependencies_no_cycle BEFORE INSERT OR UPDATE ON task_dependencies
  FOR EACH ROW EXECUTE FUNCTION ralph_no_blocker_cycle();

-- A task as JSON (what `--json` prints), with its blockers.
CREATE OR REPLACE FUNCTION ralph_task_json(t tasks) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', t.id, 'description', t.description, 'category', t.category, 'priority', t.priority,
    'status', t.status, 'spec_ref', t.spec_ref, 'ref', t.ref, 'steps', t.steps, 'result', t.result,
    'assignee', t.assignee, 'lease_expires_at', t.lease_expires_at, 'retry_count', t.retry_count,
    'created_at', t.created_at, 'updated_at', t.updated_at, 'deleted_at', t.deleted_at,
    'blocked_by', coalesce((SELECT json_agg(d.blocked_by ORDER BY d.blocked_by)
                            FROM task_dependencies d WHERE d.task_id = t.id), '[]'::json))
$$;

-- A task in one readable line: "VERB ID: description [p2 feat, active, agent, lease until …]".
CREATE OR REPLACE FUNCTION ralph_task_line(verb text, t tasks) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT format('%s %s: %s [p%s %s, %s%s%s%s]', verb, t.id,
    left(regexp_replace(t.description, '\s+', ' ', 'g'), 70), t.priority, t.category, t.status,
    CASE WHEN t.assignee IS NOT NULL AND t.status = 'active' THEN ', ' || t.assignee ELSE '' END,
    CASE WHEN t.status = 'active'
         THEN ', lease until ' || to_char(t.lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
         ELSE '' END,
    CASE WHEN t.retry_count > 0 THEN ', retry ' || t.retry_count ELSE '' END)
$$;

-- Whether every blocker of a task is done or deleted.
CREATE OR REPLACE FUNCTION ralph_unblocked(p_task text) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT NOT EXISTS (
    SELECT 1 FROM task_dependencies d JOIN tasks b ON b.id = d.blocked_by
    WHERE d.task_id = p_task AND b.status NOT IN ('done', 'deleted') AND b.deleted_at IS NULL)
$$;

-- Claims the most urgent (then oldest) task that is open, or active with an
-- expired lease, whose blockers are all done or deleted; with p_task, that
-- task only. One statement: the candidate row is locked with SKIP LOCKED, so
-- concurrent claimers never get the same task and never wait on each other.
-- Reclaiming an expired lease counts a retry.
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
      updated_at = clock_timestamp(),
      assignee = p_agent,
      lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds),
      retry_count = t.retry_count + CASE WHEN t.status = 'active' THEN 1 ELSE 0 END
  FROM candidate c
  WHERE t.id = c.id
  RETURNING t.*;
$$;

-- The marker `task` looks for to know the schema is in place (last, so it
-- exists only when everything above does).
CREATE OR REPLACE FUNCTION ralph_schema_version() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 1';

COMMIT;
