-- ralph's task store. Idempotent (CREATE … IF NOT EXISTS, CREATE OR
-- REPLACE): applied automatically on first use, by `task init`, `ralph.sh
-- init` and the container entrypoint; applying it to a store made by an
-- older version upgrades that store. One transaction, serialized by an
-- advisory lock so concurrent first uses don't race on the catalog.
--
-- Every object is named with its schema (public.tasks, pg_catalog.…), and
-- every function runs with `SET search_path = pg_catalog, pg_temp`: what a
-- function calls can't be shadowed by an object someone else made (in
-- public, or a temporary one), whoever calls it. Tested on PostgreSQL 15;
-- needs 14 or later (CREATE OR REPLACE TRIGGER), and psql 15 for `task
-- init` (\getenv).
SET client_min_messages = warning;
BEGIN;
DO $$ BEGIN PERFORM pg_catalog.pg_advisory_xact_lock(7426001); END $$;

CREATE TABLE IF NOT EXISTS public.tasks (
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
ALTER TABLE public.tasks ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;
ALTER TABLE public.tasks ADD COLUMN IF NOT EXISTS max_attempts integer;
ALTER TABLE public.tasks ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE public.tasks ADD COLUMN IF NOT EXISTS not_before timestamptz;
-- The agent's identity (schema 3): each claim gives the attempt a new
-- random lease_token, which only the worker reads and hands to its agent
-- (see "The agent acts for one task" below); added_by is the task whose
-- agent added this one.
ALTER TABLE public.tasks ADD COLUMN IF NOT EXISTS lease_token uuid;
ALTER TABLE public.tasks ADD COLUMN IF NOT EXISTS added_by text;
DO $$ BEGIN
  -- retry_count (the first release's) becomes attempts.
  IF EXISTS (SELECT 1 FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = 'tasks' AND column_name = 'retry_count') THEN
    UPDATE public.tasks SET attempts = retry_count + CASE WHEN status = 'active' THEN 1 ELSE 0 END WHERE attempts = 0;
    ALTER TABLE public.tasks DROP COLUMN retry_count;
  END IF;
END $$;
ALTER TABLE public.tasks DROP CONSTRAINT IF EXISTS tasks_status_check;
ALTER TABLE public.tasks ADD CONSTRAINT tasks_status_check CHECK (status IN ('open', 'active', 'done', 'failed', 'deleted'));
ALTER TABLE public.tasks DROP CONSTRAINT IF EXISTS tasks_attempts_check;
ALTER TABLE public.tasks ADD CONSTRAINT tasks_attempts_check
  CHECK (attempts >= 0 AND (max_attempts IS NULL OR max_attempts BETWEEN 1 AND 1000));

-- What the expired-lease sweep looks at: held tasks by lease end.
CREATE INDEX IF NOT EXISTS tasks_active_lease ON public.tasks (lease_expires_at) WHERE status = 'active' AND deleted_at IS NULL;

-- What `claim` and `peek` scan: live tasks in urgency order.
CREATE INDEX IF NOT EXISTS tasks_claim_order ON public.tasks (priority, created_at, id)
  WHERE deleted_at IS NULL AND status IN ('open', 'active');

CREATE TABLE IF NOT EXISTS public.task_dependencies (
  task_id    text NOT NULL REFERENCES public.tasks (id),
  blocked_by text NOT NULL REFERENCES public.tasks (id),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (task_id, blocked_by),
  CHECK (task_id <> blocked_by)
);
CREATE INDEX IF NOT EXISTS task_dependencies_blocked_by ON public.task_dependencies (blocked_by);

CREATE TABLE IF NOT EXISTS public.agents (
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
CREATE OR REPLACE FUNCTION public.ralph_touch_updated_at() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  NEW.updated_at := pg_catalog.clock_timestamp();
  RETURN NEW;
END $$;

-- A done task never changes status again, whatever client writes to it
-- (the trigger's WHEN clause picks the offending updates).
CREATE OR REPLACE FUNCTION public.ralph_done_is_final() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'task % is done: a done task cannot change status', OLD.id
    USING ERRCODE = 'check_violation';
END $$;

-- No blocker cycles: a new dependency may not close a loop. Writers of
-- dependencies are serialized by an advisory lock, and the check runs after
-- it (a fresh snapshot), so two concurrent blocks can't make a cycle that
-- neither of them saw. SECURITY DEFINER: the lock is taken as the store's
-- owner, so the agent role (which adds dependencies) needs no right to the
-- advisory lock functions (revoked below).
CREATE OR REPLACE FUNCTION public.ralph_no_blocker_cycle() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(7426002);
  IF EXISTS (
    WITH RECURSIVE upstream(id) AS (
      SELECT NEW.blocked_by
      UNION
      SELECT d.blocked_by FROM public.task_dependencies d JOIN upstream u ON d.task_id = u.id)
    SELECT 1 FROM upstream WHERE id = NEW.task_id) THEN
    RAISE EXCEPTION 'blocking % by % would make a cycle (% already waits on %): drop one of the dependencies with `task unblock`',
      NEW.task_id, NEW.blocked_by, NEW.blocked_by, NEW.task_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION public.ralph_no_blocker_cycle() FROM PUBLIC;

CREATE OR REPLACE TRIGGER tasks_touch BEFORE UPDATE ON public.tasks
  FOR EACH ROW WHEN (NEW.updated_at IS NULL OR NEW.updated_at < now() OR NEW.updated_at <= OLD.updated_at)
  EXECUTE FUNCTION public.ralph_touch_updated_at();
CREATE OR REPLACE TRIGGER tasks_done_is_final BEFORE UPDATE ON public.tasks
  FOR EACH ROW WHEN (OLD.status = 'done' AND NEW.status IS DISTINCT FROM 'done')
  EXECUTE FUNCTION public.ralph_done_is_final();
CREATE OR REPLACE TRIGGER agents_touch BEFORE UPDATE ON public.agents
  FOR EACH ROW WHEN (NEW.updated_at IS NULL OR NEW.updated_at < now() OR NEW.updated_at <= OLD.updated_at)
  EXECUTE FUNCTION public.ralph_touch_updated_at();
CREATE OR REPLACE TRIGGER task_dependencies_no_cycle BEFORE INSERT OR UPDATE ON public.task_dependencies
  FOR EACH ROW EXECUTE FUNCTION public.ralph_no_blocker_cycle();

-- The agent acts for one task. All agents share one login role (ralph_agent
-- and RALPH_AGENT_DB_URL), so the role can't say which task an agent works:
-- a secret does. Each claim draws a fresh random lease_token (122 random
-- bits) for that attempt; the worker and the owner can read it, the agent
-- role can't (no SELECT on the column). `task claim` hands it to the
-- worker's agent through the worker's state directory (RALPH_STATE_DIR,
-- shared by the worker and its agent only), and the agent's `task` commands
-- send it as the setting ralph.task_token. The token names the
-- agent's task only while that attempt holds it (active, not deleted): a
-- done, failed, released or expired-and-reclaimed attempt's token names
-- nothing. Another agent's token is never readable and can't be guessed,
-- so an agent can't act for a task it doesn't work.
-- ralph_agent_task(): the task (id, priority) the session's token names,
-- or NULLs. SECURITY DEFINER: it reads lease_token, which its callers can't.
CREATE OR REPLACE FUNCTION public.ralph_agent_task(OUT id text, OUT priority smallint) LANGUAGE plpgsql STABLE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  token text := nullif(pg_catalog.current_setting('ralph.task_token', true), '');
BEGIN
  IF token IS NULL OR token !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    RETURN;
  END IF;
  SELECT t.id, t.priority INTO id, priority FROM public.tasks t
  WHERE t.lease_token = token::uuid AND t.status = 'active' AND t.deleted_at IS NULL;
END $$;
REVOKE ALL ON FUNCTION public.ralph_agent_task() FROM PUBLIC;
-- A task an agent adds records which task's agent added it (the agent
-- can't write this column: the default always applies).
ALTER TABLE public.tasks ALTER COLUMN added_by SET DEFAULT (public.ralph_agent_task()).id;

-- The most attempts an agent may give a task it adds (RALPH_MAX_ATTEMPTS
-- is 3 by default; the table allows 1000, for operators).
CREATE OR REPLACE FUNCTION public.ralph_agent_max_attempts() RETURNS integer LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS 'SELECT 10';

-- The check of the agent's INSERT policy on tasks: it works a task (its
-- token names one), and the new task is no more urgent than that one,
-- gets at most ralph_agent_max_attempts() attempts, and is not backdated
-- (not_before in the past). Raises what is wrong; true otherwise.
CREATE OR REPLACE FUNCTION public.ralph_agent_may_add(p_priority smallint, p_max_attempts integer, p_not_before timestamptz)
RETURNS boolean LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  own record;
BEGIN
  SELECT * INTO own FROM public.ralph_agent_task();
  IF own.id IS NULL THEN
    RAISE EXCEPTION 'the agent role adds tasks only for the task it works: no task in progress has the token in ralph.task_token (`task add` sends the one the worker''s claim left in RALPH_STATE_DIR)'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_priority < own.priority THEN
    RAISE EXCEPTION 'priority % is more urgent than that of task % (priority %), the task this agent works: use --priority % or higher',
      p_priority, own.id, own.priority, own.priority
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_max_attempts > public.ralph_agent_max_attempts() THEN
    RAISE EXCEPTION 'max_attempts % is more than an agent may give a task: use at most %',
      p_max_attempts, public.ralph_agent_max_attempts()
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_not_before < pg_catalog.now() THEN
    RAISE EXCEPTION 'not_before % is in the past: an agent may delay a task it adds, not backdate it', p_not_before
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN true;
END $$;

-- The check of the agent's INSERT policy on task_dependencies: an agent
-- makes wait only the task it works, or an untouched task its task added;
-- never anyone else's.
CREATE OR REPLACE FUNCTION public.ralph_agent_may_block(p_task text)
RETURNS boolean LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  own record;
BEGIN
  SELECT * INTO own FROM public.ralph_agent_task();
  IF own.id IS NULL THEN
    RAISE EXCEPTION 'the agent role adds blockers only for the task it works: no task in progress has the token in ralph.task_token (`task block` sends the one the worker''s claim left in RALPH_STATE_DIR)'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_task = own.id OR EXISTS (
      SELECT 1 FROM public.tasks t
      WHERE t.id = p_task AND t.added_by = own.id AND t.status = 'open' AND t.attempts = 0 AND t.deleted_at IS NULL) THEN
    RETURN true;
  END IF;
  RAISE EXCEPTION 'an agent makes wait only its own task (%) and the open tasks it added, not %', own.id, p_task
    USING ERRCODE = 'insufficient_privilege';
END $$;

-- Every task as the caller may see it: what the CLI reads. result and
-- last_error only for a caller with SELECT on those columns (the owner, the
-- worker role), or for the agent's own task; NULL in other tasks' rows for
-- the agent role, whose column privileges leave them out (so it can't read
-- them from public.tasks either). The view runs as its owner, the masks
-- (has_column_privilege, the token) as the caller.
CREATE OR REPLACE VIEW public.task_board AS
SELECT t.id, t.description, t.category, t.priority, t.status, t.spec_ref, t.ref, t.steps,
  CASE WHEN c.full OR t.id = c.own THEN t.result END AS result,
  t.assignee, t.lease_expires_at, t.created_at, t.updated_at, t.deleted_at, t.attempts, t.max_attempts,
  CASE WHEN c.full OR t.id = c.own THEN t.last_error END AS last_error,
  t.not_before, t.added_by
FROM public.tasks t,
  (SELECT pg_catalog.has_column_privilege('public.tasks', 'result', 'SELECT')
          AND pg_catalog.has_column_privilege('public.tasks', 'last_error', 'SELECT') AS full,
          (public.ralph_agent_task()).id AS own) c;

-- A task row as the view's row (for the writers: they see everything).
CREATE OR REPLACE FUNCTION public.ralph_board_row(t public.tasks) RETURNS public.task_board LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT ROW(t.id, t.description, t.category, t.priority, t.status, t.spec_ref, t.ref, t.steps, t.result,
    t.assignee, t.lease_expires_at, t.created_at, t.updated_at, t.deleted_at, t.attempts, t.max_attempts,
    t.last_error, t.not_before, t.added_by)::public.task_board
$$;

-- A task as JSON (what `--json` prints), with its blockers.
CREATE OR REPLACE FUNCTION public.ralph_task_json(t public.task_board) RETURNS json LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT json_build_object(
    'id', t.id, 'description', t.description, 'category', t.category, 'priority', t.priority,
    'status', t.status, 'spec_ref', t.spec_ref, 'ref', t.ref, 'steps', t.steps, 'result', t.result,
    'assignee', t.assignee, 'lease_expires_at', t.lease_expires_at, 'attempts', t.attempts,
    'max_attempts', t.max_attempts, 'last_error', t.last_error, 'not_before', t.not_before,
    'created_at', t.created_at, 'updated_at', t.updated_at, 'deleted_at', t.deleted_at,
    'blocked_by', coalesce((SELECT json_agg(d.blocked_by ORDER BY d.blocked_by)
                            FROM public.task_dependencies d WHERE d.task_id = t.id), '[]'::json))
$$;
CREATE OR REPLACE FUNCTION public.ralph_task_json(t public.tasks) RETURNS json LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT public.ralph_task_json(public.ralph_board_row(t))
$$;

-- A time as the CLI prints it: 2026-11-25T18:00:00Z.
CREATE OR REPLACE FUNCTION public.ralph_time(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- A task in one readable line: "VERB ID: description [p2 feat, active, agent, lease until …, attempt 1]".
CREATE OR REPLACE FUNCTION public.ralph_task_line(verb text, t public.task_board) RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT format('%s %s: %s [p%s %s, %s%s%s%s%s%s]', verb, t.id,
    left(regexp_replace(t.description, '\s+', ' ', 'g'), 70), t.priority, t.category, t.status,
    CASE WHEN t.assignee IS NOT NULL AND t.status = 'active' THEN ', ' || t.assignee ELSE '' END,
    CASE WHEN t.status = 'active' THEN ', lease until ' || public.ralph_time(t.lease_expires_at) ELSE '' END,
    CASE WHEN t.attempts > 0 THEN ', attempt ' || t.attempts ELSE '' END,
    CASE WHEN t.not_before > clock_timestamp() AND t.status = 'open' THEN ', not before ' || public.ralph_time(t.not_before) ELSE '' END,
    CASE WHEN t.last_error IS NOT NULL AND t.status IN ('open', 'failed')
         THEN ', last error: ' || left(t.last_error, 80) ELSE '' END)
$$;
CREATE OR REPLACE FUNCTION public.ralph_task_line(verb text, t public.tasks) RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT public.ralph_task_line(verb, public.ralph_board_row(t))
$$;

-- The wait after a failed attempt: base doubled per attempt after the
-- first, at most max (seconds).
CREATE OR REPLACE FUNCTION public.ralph_backoff(p_attempts integer, p_base integer, p_max integer)
RETURNS interval LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.make_interval(secs => least(p_max::float8,
    p_base * pg_catalog.power(2::float8, least(greatest(p_attempts, 1) - 1, 30))))
$$;

-- Whether every blocker of a task is done or deleted.
CREATE OR REPLACE FUNCTION public.ralph_unblocked(p_task text) RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT NOT EXISTS (
    SELECT 1 FROM public.task_dependencies d JOIN public.tasks b ON b.id = d.blocked_by
    WHERE d.task_id = p_task AND b.status NOT IN ('done', 'deleted') AND b.deleted_at IS NULL)
$$;

-- Tasks whose lease expired (a worker that died or lost the database for
-- longer than its lease): that attempt failed. Out of attempts: `failed`;
-- else open again after the back-off, counted from when the lease ran out.
-- Rows another claimer is sweeping are skipped, never waited on.
CREATE OR REPLACE FUNCTION public.ralph_sweep_expired(p_max_attempts integer, p_backoff_base integer, p_backoff_max integer)
RETURNS void LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE public.tasks t
  SET status = CASE WHEN t.attempts >= coalesce(t.max_attempts, p_max_attempts) THEN 'failed' ELSE 'open' END,
      last_error = format('the lease of %s expired (attempt %s): the worker died or lost the database', t.assignee, t.attempts),
      not_before = t.lease_expires_at + public.ralph_backoff(t.attempts, p_backoff_base, p_backoff_max),
      assignee = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
  FROM (SELECT id FROM public.tasks
        WHERE status = 'active' AND lease_expires_at < clock_timestamp() AND deleted_at IS NULL
        FOR UPDATE SKIP LOCKED) expired
  WHERE t.id = expired.id
$$;

-- The first release's claim had three parameters: drop it, or calls would be ambiguous.
DROP FUNCTION IF EXISTS public.ralph_claim(text, integer, text);

-- Claims the most urgent (then oldest) open task that is past its back-off
-- and whose blockers are all done or deleted; with p_task, that task only.
-- Expired leases are swept first (a failed attempt each). The candidate row
-- is locked with SKIP LOCKED, so concurrent claimers never get the same
-- task and never wait on each other. Each claim counts an attempt, and
-- gets a new lease_token (the agent's identity for this attempt).
CREATE OR REPLACE FUNCTION public.ralph_claim(p_agent text, p_lease_seconds integer, p_task text DEFAULT NULL,
  p_max_attempts integer DEFAULT 3, p_backoff_base integer DEFAULT 30, p_backoff_max integer DEFAULT 900)
RETURNS SETOF public.tasks LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Cheap when nothing expired: the partial index holds only open and active tasks.
  IF EXISTS (SELECT 1 FROM public.tasks WHERE status = 'active' AND lease_expires_at < clock_timestamp() AND deleted_at IS NULL) THEN
    PERFORM public.ralph_sweep_expired(p_max_attempts, p_backoff_base, p_backoff_max);
  END IF;
  RETURN QUERY
  WITH candidate AS (
    SELECT t.id
    FROM public.tasks t
    WHERE t.deleted_at IS NULL
      AND t.status = 'open'
      AND (t.not_before IS NULL OR t.not_before <= clock_timestamp())
      AND (p_task IS NULL OR t.id = p_task)
      AND NOT EXISTS (
        SELECT 1 FROM public.task_dependencies d JOIN public.tasks b ON b.id = d.blocked_by
        WHERE d.task_id = t.id AND b.status NOT IN ('done', 'deleted') AND b.deleted_at IS NULL)
    ORDER BY t.priority, t.created_at, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
  )
  UPDATE public.tasks t
  SET status = 'active',
      updated_at = clock_timestamp(),
      assignee = p_agent,
      lease_expires_at = clock_timestamp() + pg_catalog.make_interval(secs => p_lease_seconds),
      attempts = t.attempts + 1,
      not_before = NULL,
      lease_token = pg_catalog.gen_random_uuid()
  FROM candidate c
  WHERE t.id = c.id
  RETURNING t.*;
END $$;

-- A failed attempt of a held task: why, and a back-off before the next; the
-- last allowed attempt makes it `failed`.
CREATE OR REPLACE FUNCTION public.ralph_fail(p_task text, p_agent text, p_reason text,
  p_max_attempts integer, p_backoff_base integer, p_backoff_max integer)
RETURNS SETOF public.tasks LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  UPDATE public.tasks t
  SET status = CASE WHEN t.attempts >= coalesce(t.max_attempts, p_max_attempts) THEN 'failed' ELSE 'open' END,
      last_error = p_reason,
      not_before = clock_timestamp() + public.ralph_backoff(t.attempts, p_backoff_base, p_backoff_max),
      assignee = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
  WHERE t.id = p_task AND t.status = 'active' AND t.assignee = p_agent AND t.deleted_at IS NULL
  RETURNING t.*
$$;

-- Least privilege, enforced by PostgreSQL rather than by the CLI. Two
-- group roles (NOLOGIN; deployments make login roles members of them):
--   ralph_worker: reads everything, and moves tasks through their lives
--     (claim, renew, done, fail, release: only those columns), and keeps
--     its agents row; no DELETE, no DDL, no rewriting a task's text.
--   ralph_agent: what the coding agent gets: reads every task's text and
--     state, but not the results or errors of tasks other than its own
--     (column privileges; the CLI reads public.task_board); adds new open
--     tasks (only the columns a new task needs, within the bounds of
--     ralph_agent_may_add) and blockers of its own task or of the tasks it
--     added, for the task it works (its token); no UPDATE or DELETE of
--     anyone's rows, no agents table, no DDL, no advisory locks.
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

-- Nobody but the owner creates objects in public (on PostgreSQL 14 and
-- older PUBLIC may): a function or table there could shadow what a query
-- names. (A no-op, with a warning, for an applier that doesn't own public.)
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The privileges are set from scratch on every application (REVOKE ALL
-- also drops column privileges): a store made by an older version loses
-- the table-wide SELECT and INSERT it gave the agent role.
REVOKE ALL ON public.tasks, public.task_dependencies, public.agents, public.task_board
  FROM PUBLIC, ralph_worker, ralph_agent;
GRANT USAGE ON SCHEMA public TO ralph_worker, ralph_agent;
GRANT SELECT ON public.tasks, public.task_dependencies, public.agents, public.task_board TO ralph_worker;
GRANT UPDATE (status, assignee, lease_expires_at, attempts, last_error, not_before, result, updated_at, lease_token)
  ON public.tasks TO ralph_worker;
GRANT INSERT, UPDATE ON public.agents TO ralph_worker;
GRANT SELECT (id, description, category, priority, status, spec_ref, ref, steps, assignee, lease_expires_at,
              created_at, updated_at, deleted_at, attempts, max_attempts, not_before, added_by)
  ON public.tasks TO ralph_agent;
GRANT INSERT (id, description, category, priority, spec_ref, ref, steps, max_attempts, not_before)
  ON public.tasks TO ralph_agent;
GRANT SELECT ON public.task_dependencies, public.task_board TO ralph_agent;
GRANT INSERT (task_id, blocked_by) ON public.task_dependencies TO ralph_agent;
GRANT EXECUTE ON FUNCTION public.ralph_agent_task() TO ralph_worker, ralph_agent;

ALTER TABLE public.tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.task_dependencies ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tasks_read ON public.tasks;
CREATE POLICY tasks_read ON public.tasks FOR SELECT TO ralph_worker, ralph_agent USING (true);
DROP POLICY IF EXISTS tasks_work ON public.tasks;
CREATE POLICY tasks_work ON public.tasks FOR UPDATE TO ralph_worker USING (deleted_at IS NULL) WITH CHECK (deleted_at IS NULL);
-- An agent adds open, untouched tasks only, for the task it works, within
-- its bounds.
DROP POLICY IF EXISTS tasks_add ON public.tasks;
CREATE POLICY tasks_add ON public.tasks FOR INSERT TO ralph_agent
  WITH CHECK (status = 'open' AND assignee IS NULL AND lease_expires_at IS NULL AND result IS NULL
              AND attempts = 0 AND last_error IS NULL AND deleted_at IS NULL AND lease_token IS NULL
              AND public.ralph_agent_may_add(priority, max_attempts, not_before));
DROP POLICY IF EXISTS dependencies_read ON public.task_dependencies;
CREATE POLICY dependencies_read ON public.task_dependencies FOR SELECT TO ralph_worker, ralph_agent USING (true);
-- ... and blockers of its own task, or of the tasks it added.
DROP POLICY IF EXISTS dependencies_add ON public.task_dependencies;
CREATE POLICY dependencies_add ON public.task_dependencies FOR INSERT TO ralph_agent
  WITH CHECK (public.ralph_agent_may_block(task_id));

-- Advisory locks are one keyspace for every session of the database, and
-- their functions are EXECUTE to PUBLIC by default: an agent could hold
-- the store's locks (7426001: applying this file, 7426002: adding a
-- blocker) and stall everyone. No ralph role calls them: this file runs as
-- the owner, and the blocker trigger is SECURITY DEFINER (runs as the
-- owner). So every advisory lock function is revoked from PUBLIC, and the
-- one the store uses is granted back to the database's owner only. Only a
-- superuser may change the rights of pg_catalog functions: for any other
-- applier this is skipped with a warning (apply the file once as a
-- superuser). The store's database is meant for the store alone: other
-- applications' roles lose the advisory locks too.
DO $$
DECLARE
  f record;
  db_owner name;
BEGIN
  IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
    RAISE WARNING 'the advisory lock functions stay EXECUTE to PUBLIC: only a superuser can revoke them (apply the schema once as a superuser)';
    RETURN;
  END IF;
  FOR f IN SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args
           FROM pg_catalog.pg_proc p
           WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname ~ '^pg_(try_)?advisory_' LOOP
    EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION pg_catalog.%I(%s) FROM PUBLIC', f.proname, f.args);
  END LOOP;
  SELECT pg_catalog.pg_get_userbyid(d.datdba) INTO db_owner
  FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database();
  EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION pg_catalog.pg_advisory_xact_lock(bigint) TO %I', db_owner);
END $$;

-- The agent's login role (RALPH_AGENT_DB_URL; `task init` makes it with
-- CONNECTION LIMIT RALPH_AGENT_DB_CONNECTIONS, default 10) is shared by
-- every agent, and each agent's `task` call holds one connection for a few
-- milliseconds: 10 is plenty, and bounds what a hostile agent can take of
-- max_connections (100 by default) from the workers and operators. Login
-- members of ralph_agent made by an older version (no limit) get 10 here,
-- when the applier may alter roles (else a warning).
DO $$
DECLARE
  r name;
BEGIN
  FOR r IN SELECT m.rolname FROM pg_catalog.pg_auth_members a JOIN pg_catalog.pg_roles m ON m.oid = a.member
           WHERE a.roleid = 'ralph_agent'::regrole AND m.rolcanlogin AND m.rolconnlimit = -1 AND NOT m.rolsuper LOOP
    BEGIN
      EXECUTE pg_catalog.format('ALTER ROLE %I CONNECTION LIMIT 10', r);
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE WARNING 'the agent role % has no connection limit: run `task init` with a RALPH_DB_URL that may alter roles', r;
    END;
  END LOOP;
END $$;

-- The marker `task` looks for to know the schema is in place (last, so it
-- exists only when everything above does).
CREATE OR REPLACE FUNCTION public.ralph_schema_version() RETURNS integer LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS 'SELECT 3';

COMMIT;
