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
  status           text NOT NULL DEFAULT 'open',
  spec_ref         text,
  ref              text,
  steps            text[] NOT NULL DEFAULT '{}',
  result           jsonb,
  assignee         text,
  lease_expires_at timestamptz,
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  deleted_at       timestamptz,
  -- An active task always has a holder and a lease.
  CHECK (status <> 'active' OR (assignee IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- Attempts (added after the first release: ADD … IF NOT EXISTS upgrades a
-- store made before). Every claim counts one; a failed attempt (`task fail`,
-- or a lease that expired under a dead worker) records why and makes the
-- task claimable again only after a back-off (not_before); after
-- max_attempts (the task's, else the claimer's RALPH_MAX_ATTEMPTS) it is
-- `failed`, which no claim takes and `task retry` reopens.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS max_attempts integer;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS not_before timestamptz;
DO $$ BEGIN
  -- retry_count (the first release's) becomes attempts.
  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'retry_count') THEN
    UPDATE tasks SET attempts = retry_count + CASE WHEN status = 'active' THEN 1 ELSE 0 END WHERE attempts = 0;
    ALTER TABLE tasks DROP COLUMN retry_count;
  END IF;
END $$;
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN ('open', 'active', 'done', 'failed', 'deleted'));
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_attempts_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_attempts_check
  CHECK (attempts >= 0 AND (max_attempts IS NULL OR max_attempts BETWEEN 1 AND 1000));

-- What the expired-lease sweep looks at: held tasks by lease end.
CREATE INDEX IF NOT EXISTS tasks_active_lease ON tasks (lease_expires_at) WHERE status = 'active' AND deleted_at IS NULL;

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
    'assignee', t.assignee, 'lease_expires_at', t.lease_expires_at, 'attempts', t.attempts,
    'max_attempts', t.max_attempts, 'last_error', t.last_error, 'not_before', t.not_before,
    'created_at', t.created_at, 'updated_at', t.updated_at, 'deleted_at', t.deleted_at,
    'blocked_by', coalesce((SELECT json_agg(d.blocked_by ORDER BY d.blocked_by)
                            FROM task_dependencies d WHERE d.task_id = t.id), '[]'::json))
$$;

-- A time as the CLI prints it: 2026-11-25T18:00:00Z.
CREATE OR REPLACE FUNCTION ralph_time(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- A task in one readable line: "VERB ID: description [p2 feat, active, agent, lease until …, attempt 1]".
CREATE OR REPLACE FUNCTION ralph_task_line(verb text, t tasks) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT format('%s %s: %s [p%s %s, %s%s%s%s%s%s]', verb, t.id,
    left(regexp_replace(t.description, '\s+', ' ', 'g'), 70), t.priority, t.category, t.status,
    CASE WHEN t.assignee IS NOT NULL AND t.status = 'active' THEN ', ' || t.assignee ELSE '' END,
    CASE WHEN t.status = 'active' THEN ', lease until ' || ralph_time(t.lease_expires_at) ELSE '' END,
    CASE WHEN t.attempts > 0 THEN ', attempt ' || t.attempts ELSE '' END,
    CASE WHEN t.not_before > clock_timestamp() AND t.status = 'open' THEN ', not before ' || ralph_time(t.not_before) ELSE '' END,
    CASE WHEN t.last_error IS NOT NULL AND t.status IN ('open', 'failed')
         THEN ', last error: ' || left(t.last_error, 80) ELSE '' END)
$$;

-- The wait after a failed attempt: base doubled per attempt after the
-- first, at most max (seconds).
CREATE OR REPLACE FUNCTION ralph_backoff(p_attempts integer, p_base integer, p_max integer)
RETURNS interval LANGUAGE sql IMMUTABLE AS $$
  SELECT make_interval(secs => least(p_max::float8, p_base * power(2::float8, least(greatest(p_attempts, 1) - 1, 30))))
$$;

-- Whether every blocker of a task is done or deleted.
CREATE OR REPLACE FUNCTION ralph_unblocked(p_task text) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT NOT EXISTS (
    SELECT 1 FROM task_dependencies d JOIN tasks b ON b.id = d.blocked_by
    WHERE d.task_id = p_task AND b.status NOT IN ('done', 'deleted') AND b.deleted_at IS NULL)
$$;

-- Tasks whose lease expired (a worker that died or lost the database for
-- longer than its lease): that attempt failed. Out of attempts: `failed`;
-- else open again after the back-off, counted from when the lease ran out.
-- Rows another claimer is sweeping are skipped, never waited on.
CREATE OR REPLACE FUNCTION ralph_sweep_expired(p_max_attempts integer, p_backoff_base integer, p_backoff_max integer)
RETURNS void LANGUAGE sql AS $$
  UPDATE tasks t
  SET status = CASE WHEN t.attempts >= coalesce(t.max_attempts, p_max_attempts) THEN 'failed' ELSE 'open' END,
      last_error = format('the lease of %s expired (attempt %s): the worker died or lost the database', t.assignee, t.attempts),
      not_before = t.lease_expires_at + ralph_backoff(t.attempts, p_backoff_base, p_backoff_max),
      assignee = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
  FROM (SELECT id FROM tasks
        WHERE status = 'active' AND lease_expires_at < clock_timestamp() AND deleted_at IS NULL
        FOR UPDATE SKIP LOCKED) expired
  WHERE t.id = expired.id
$$;

-- The first release's claim had three parameters: drop it, or calls would be ambiguous.
DROP FUNCTION IF EXISTS ralph_claim(text, integer, text);

-- Claims the most urgent (then oldest) open task that is past its back-off
-- and whose blockers are all done or deleted; with p_task, that task only.
-- Expired leases are swept first (a failed attempt each). The candidate row
-- is locked with SKIP LOCKED, so concurrent claimers never get the same
-- task and never wait on each other. Each claim counts an attempt.
CREATE OR REPLACE FUNCTION ralph_claim(p_agent text, p_lease_seconds integer, p_task text DEFAULT NULL,
  p_max_attempts integer DEFAULT 3, p_backoff_base integer DEFAULT 30, p_backoff_max integer DEFAULT 900)
RETURNS SETOF tasks LANGUAGE plpgsql AS $$
BEGIN
  -- Cheap when nothing expired: the partial index holds only open and active tasks.
  IF EXISTS (SELECT 1 FROM tasks WHERE status = 'active' AND lease_expires_at < clock_timestamp() AND deleted_at IS NULL) THEN
    PERFORM ralph_sweep_expired(p_max_attempts, p_backoff_base, p_backoff_max);
  END IF;
  RETURN QUERY
  WITH candidate AS (
    SELECT t.id
    FROM tasks t
    WHERE t.deleted_at IS NULL
      AND t.status = 'open'
      AND (t.not_before IS NULL OR t.not_before <= clock_timestamp())
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
      attempts = t.attempts + 1,
      not_before = NULL
  FROM candidate c
  WHERE t.id = c.id
  RETURNING t.*;
END $$;

-- A failed attempt of a held task: why, and a back-off before the next; the
-- last allowed attempt makes it `failed`.
CREATE OR REPLACE FUNCTION ralph_fail(p_task text, p_agent text, p_reason text,
  p_max_attempts integer, p_backoff_base integer, p_backoff_max integer)
RETURNS SETOF tasks LANGUAGE sql AS $$
  UPDATE tasks t
  SET status = CASE WHEN t.attempts >= coalesce(t.max_attempts, p_max_attempts) THEN 'failed' ELSE 'open' END,
      last_error = p_reason,
      not_before = clock_timestamp() + ralph_backoff(t.attempts, p_backoff_base, p_backoff_max),
      assignee = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
  WHERE t.id = p_task AND t.status = 'active' AND t.assignee = p_agent AND t.deleted_at IS NULL
  RETURNING t.*
$$;

-- Least privilege, enforced by PostgreSQL rather than by the CLI. Two
-- group roles (NOLOGIN; deployments make login roles members of them):
--   ralph_worker: reads everything, and moves tasks through their lives
--     (claim, renew, done, fail, release: only those columns), and keeps
--     its agents row; no DELETE, no DDL, no rewriting a task's text.
--   ralph_agent: what the coding agent gets: reads tasks and adds new open
--     ones (with their blockers); no UPDATE or DELETE of anyone's rows, no
--     agents table, no DDL.
-- The owner (who applies this file) keeps every right. Roles are per
-- cluster: made once, whoever gets there first.
DO $$ BEGIN
  CREATE ROLE ralph_worker NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
  CREATE ROLE ralph_agent NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
REVOKE ALL ON tasks, task_dependencies, agents FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO ralph_worker, ralph_agent;
GRANT SELECT ON tasks, task_dependencies, agents TO ralph_worker;
GRANT UPDATE (status, assignee, lease_expires_at, attempts, last_error, not_before, result, updated_at)
  ON tasks TO ralph_worker;
GRANT INSERT, UPDATE ON agents TO ralph_worker;
GRANT SELECT, INSERT ON tasks, task_dependencies TO ralph_agent;

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE task_dependencies ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tasks_read ON tasks;
CREATE POLICY tasks_read ON tasks FOR SELECT TO ralph_worker, ralph_agent USING (true);
DROP POLICY IF EXISTS tasks_work ON tasks;
CREATE POLICY tasks_work ON tasks FOR UPDATE TO ralph_worker USING (deleted_at IS NULL) WITH CHECK (deleted_at IS NULL);
-- An agent adds open, untouched tasks only.
DROP POLICY IF EXISTS tasks_add ON tasks;
CREATE POLICY tasks_add ON tasks FOR INSERT TO ralph_agent
  WITH CHECK (status = 'open' AND assignee IS NULL AND lease_expires_at IS NULL AND result IS NULL
              AND attempts = 0 AND last_error IS NULL AND deleted_at IS NULL);
DROP POLICY IF EXISTS dependencies_read ON task_dependencies;
CREATE POLICY dependencies_read ON task_dependencies FOR SELECT TO ralph_worker, ralph_agent USING (true);
-- ... and their blockers, on tasks nobody has started.
DROP POLICY IF EXISTS dependencies_add ON task_dependencies;
CREATE POLICY dependencies_add ON task_dependencies FOR INSERT TO ralph_agent
  WITH CHECK (EXISTS (SELECT 1 FROM tasks t WHERE t.id = task_id AND t.status = 'open' AND t.attempts = 0));

-- The marker `task` looks for to know the schema is in place (last, so it
-- exists only when everything above does).
CREATE OR REPLACE FUNCTION ralph_schema_version() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 2';

COMMIT;
