"""The PostgreSQL schema, as numbered migrations recorded in ``_migrations``.

The same idea as the SQLite engine's migrations: each entry is applied once, in
order, and never edited after it shipped; add new ones at the end. Decisions and
rewards are range-partitioned by day (``created_at``, ``received_at`` in epoch
seconds); ``partitions.py`` creates the days ahead and drops expired ones.
"""
from __future__ import annotations

import json

from experiments.store.migrations import WATCH_BEFORE_DEFAULT

V1_CORE = """
CREATE SEQUENCE decisions_seq;
CREATE SEQUENCE rewards_id;
CREATE TABLE experiments (key text PRIMARY KEY, name text, kind text, status text, version bigint, spec text,
    created_at double precision, updated_at double precision);
CREATE TABLE experiment_history (id bigserial PRIMARY KEY, experiment text, version bigint, status text, spec text,
    change text, actor text, at double precision);
CREATE INDEX ON experiment_history (experiment, version);
-- xid: the writing transaction, for a learner cursor that follows commit order (a seq does not).
CREATE TABLE decisions (seq bigint NOT NULL DEFAULT nextval('decisions_seq'), event_id text NOT NULL,
    experiment text NOT NULL, unit text, variant text NOT NULL, model_version bigint, spec_version bigint,
    context text, candidate_set text, excluded text, slate text NOT NULL, created_at double precision NOT NULL,
    window_closes_at double precision, defer_activation bigint, activated_at double precision, learning_mode text,
    model_slate text, slot_context text, xid xid8 NOT NULL DEFAULT pg_current_xact_id())
    PARTITION BY RANGE (created_at);
CREATE INDEX ON decisions (event_id);
CREATE INDEX ON decisions (seq);
CREATE INDEX ON decisions (experiment, xid, seq);
CREATE INDEX ON decisions (experiment, created_at);
CREATE INDEX ON decisions (experiment, variant, unit, created_at);
-- A partitioned table cannot hold a unique key without its partition column: event ids are unique here.
CREATE TABLE event_ids (event_id text PRIMARY KEY, created_at double precision NOT NULL);
CREATE INDEX ON event_ids (created_at);
CREATE TABLE candidate_sets (hash text PRIMARY KEY, candidates text, size bigint, used_at double precision);
CREATE TABLE rewards (id bigint NOT NULL DEFAULT nextval('rewards_id'), event_id text NOT NULL, experiment text,
    decision_seq bigint NOT NULL, reward_key text NOT NULL, type text, item text, slot bigint,
    value double precision NOT NULL, received_at double precision NOT NULL, late bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0) PARTITION BY RANGE (received_at);
CREATE INDEX ON rewards (event_id, reward_key);
CREATE INDEX ON rewards (decision_seq);
CREATE INDEX ON rewards (experiment, received_at);
CREATE INDEX ON rewards (experiment, decision_seq) WHERE late = 1;
CREATE TABLE models (id bigserial PRIMARY KEY, experiment text, version bigint, args text, features text,
    spec_version bigint, cursor_seq bigint, cursor_xid bigint NOT NULL DEFAULT 0, learned bigint,
    created_at double precision, learner text, model bytea, UNIQUE (experiment, version));
CREATE TABLE catalog_items (id text PRIMARY KEY, features text, available bigint, version bigint,
    updated_at double precision);
CREATE TABLE meta (name text PRIMARY KEY, value text);
CREATE TABLE api_keys (id bigserial PRIMARY KEY, hash text NOT NULL UNIQUE, hint text, role text NOT NULL,
    label text, created_at double precision NOT NULL, revoked_at double precision);
CREATE TABLE users (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, password_hash text NOT NULL,
    created_at double precision);
CREATE TABLE app_secrets (name text PRIMARY KEY, value text, created_at double precision);
CREATE TABLE evaluations (id bigserial PRIMARY KEY, experiment text NOT NULL, status text NOT NULL,
    spec text NOT NULL, options text, done bigint DEFAULT 0, total bigint DEFAULT 0, result text, error text,
    created_at double precision NOT NULL, started_at double precision, updated_at double precision,
    finished_at double precision);
CREATE INDEX ON evaluations (experiment, id);
CREATE TABLE model_resets (id bigserial PRIMARY KEY, experiment text NOT NULL, after_seq bigint NOT NULL,
    after_xid bigint NOT NULL DEFAULT 0, at double precision NOT NULL);
CREATE INDEX ON model_resets (experiment, id);
CREATE TABLE personalizer_resources (hash text PRIMARY KEY, experiment text NOT NULL, hint text,
    created_at double precision NOT NULL);
CREATE TABLE personalizer_settings (experiment text PRIMARY KEY, settings text, updated_at double precision);
CREATE TABLE personalizer_evaluations (experiment text, id text, name text, request text, evaluation_id bigint,
    created_at double precision, PRIMARY KEY (experiment, id));
CREATE TABLE unattributed_rewards (id bigserial PRIMARY KEY, experiment text NOT NULL, event_id text NOT NULL,
    kind text NOT NULL, slot_id text, value double precision, received_at double precision NOT NULL);
CREATE INDEX ON unattributed_rewards (experiment, received_at);
CREATE TABLE personalizer_feature_importances (experiment text, id text, name text NOT NULL,
    start_time double precision NOT NULL, end_time double precision NOT NULL, status text NOT NULL, done bigint,
    total bigint, scores text, error text, created_at double precision NOT NULL,
    updated_at double precision NOT NULL, PRIMARY KEY (experiment, id));
CREATE TABLE archive_positions (experiment text PRIMARY KEY, seq bigint NOT NULL, updated_at double precision);
CREATE TABLE archive_files (id bigserial PRIMARY KEY, experiment text NOT NULL, dataset text NOT NULL,
    day text NOT NULL, path text NOT NULL UNIQUE, pending text, first_seq bigint NOT NULL, last_seq bigint NOT NULL,
    rows bigint NOT NULL, bytes bigint, created_at double precision);
CREATE INDEX ON archive_files (experiment, dataset, day);
CREATE TABLE log_purges (id bigserial PRIMARY KEY, experiment text NOT NULL, before double precision NOT NULL,
    decisions bigint, rewards bigint, reason text, at double precision NOT NULL);
CREATE INDEX ON log_purges (experiment, id);
CREATE TABLE sign_in_failures (id bigserial PRIMARY KEY, scope text NOT NULL, at double precision NOT NULL);
CREATE INDEX ON sign_in_failures (scope, at);
CREATE TABLE sessions (hash text PRIMARY KEY, user_id bigint NOT NULL, created_at double precision NOT NULL,
    last_seen double precision NOT NULL, ended_at double precision);
"""

# Public client keys name their experiments and browser origins (JSON lists; NULL for other roles).
V2_PUBLIC_KEYS = "ALTER TABLE api_keys ADD COLUMN experiments text, ADD COLUMN origins text;"

# Leases are advisory locks; this table keeps each one's token (bumped on every change of owner) and holder.
V3_LEASES = ("CREATE TABLE leases (name text PRIMARY KEY, owner text NOT NULL, token bigint NOT NULL, process text,"
             " at double precision);")

# The archive's position is a learner cursor, (xid, seq): seq alone is not commit order.
V4_ARCHIVE_POSITION_XID = "ALTER TABLE archive_positions ADD COLUMN xid bigint NOT NULL DEFAULT 0;"

# Public keys' token buckets per client address, shared by every host (SQLite keeps them in a file mapped by
# its processes). UNLOGGED: a crash may empty them, which only lets a burst through again.
V5_RATE_BUCKETS = ("CREATE UNLOGGED TABLE rate_buckets (address bigint PRIMARY KEY, tokens double precision NOT NULL,"
                   " allowed boolean NOT NULL, at double precision NOT NULL);"
                   " CREATE INDEX rate_buckets_at ON rate_buckets (at);")

# SquareCB specs stored before exploration.normalize existed ran VW's probabilities: they say so and keep them.
# SquareCB's elimination variant is refused (VW 9 logs negative probabilities with it when candidates tie): turn
# it off, as exploration.elim or --elim in vw_args, as a new version with a history row (SQLite: m014_squarecb).
_UPGRADED = """
INSERT INTO experiment_history (experiment, version, status, spec, change, actor, at)
SELECT key, version, status, spec, '{change}', '{why}', updated_at FROM changed;"""
V6_SQUARECB = (
    "UPDATE experiments SET spec = jsonb_set(spec::jsonb, '{exploration,normalize}', 'false')::text"
    " WHERE (spec::jsonb) #>> '{exploration,algorithm}' = 'squarecb' AND (spec::jsonb) #> '{exploration,normalize}'"
    " IS NULL;"
    " WITH changed AS (UPDATE experiments SET spec = jsonb_set(spec::jsonb, '{exploration,elim}', 'false')::text,"
    " version = version + 1, updated_at = extract(epoch FROM now())"
    " WHERE (spec::jsonb) #>> '{exploration,elim}' = 'true' RETURNING key, version, status, spec, updated_at)"
    + _UPGRADED.format(change='{"exploration": {"elim": false}}',
                       why="upgrade: exploration.elim is off; Vowpal Wabbit 9''s elimination variant returns negative"
                           " probabilities when candidates tie, so the probabilities it logged were false")
    + " WITH changed AS (UPDATE experiments SET spec = jsonb_set(spec::jsonb, '{learning,vw_args}', '\"\"')::text,"
    " version = version + 1, updated_at = extract(epoch FROM now())"
    r" WHERE (spec::jsonb) #>> '{learning,vw_args}' ~ '(^|\s)--elim(\s|=|$)' RETURNING key, version, status, spec,"
    " updated_at)"
    + _UPGRADED.format(change='{"learning": {"vw_args": ""}}',
                       why="upgrade: the VW allowlist refused the old vw_args (option --elim is not allowed)")
)

# The drift watch is on for new experiments; one stored before learning.drift_watch existed keeps it off
# (SQLite: m015_drift_watch).
V7_DRIFT_WATCH = (
    "UPDATE experiments SET spec = jsonb_set(spec::jsonb, '{learning,drift_watch}', '"
    + json.dumps(WATCH_BEFORE_DEFAULT) + "')::text"
    " WHERE jsonb_typeof((spec::jsonb) -> 'learning') = 'object' AND (spec::jsonb) #> '{learning,drift_watch}' IS NULL;"
)

# (version, name, SQL): applied in order, each in its own transaction. A SQLite migration that adds
# or changes a table needs its twin here (tests/test_store_postgres.py compares the two schemas).
MIGRATIONS = [
    (1, "core", V1_CORE),
    (2, "public_keys", V2_PUBLIC_KEYS),
    (3, "leases", V3_LEASES),
    (4, "archive_position_xid", V4_ARCHIVE_POSITION_XID),
    (5, "rate_buckets", V5_RATE_BUCKETS),
    (6, "squarecb", V6_SQUARECB),
    (7, "drift_watch", V7_DRIFT_WATCH),
]
VERSION = MIGRATIONS[-1][0]
# Tables whose primary key is a serial ``id`` (an INSERT into them reports the new id).
SERIAL_ID = frozenset({"experiment_history", "models", "api_keys", "users", "evaluations", "model_resets",
                       "unattributed_rewards", "archive_files", "log_purges", "sign_in_failures", "rewards"})
# Primary keys, for SQLite's INSERT OR REPLACE.
PRIMARY_KEYS = {"experiments": ("key",), "meta": ("name",), "archive_positions": ("experiment",),
                "catalog_items": ("id",), "candidate_sets": ("hash",), "personalizer_settings": ("experiment",),
                "app_secrets": ("name",), "sessions": ("hash",)}
