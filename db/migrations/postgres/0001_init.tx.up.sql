CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    hash         BYTEA NOT NULL,
    scope        TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id);

CREATE TABLE connections (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    config       TEXT NOT NULL,
    credentials  BYTEA,
    status       TEXT NOT NULL,
    status_note  TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX connections_workspace ON connections (workspace_id, created_at);

CREATE TABLE rules (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    condition    TEXT,
    expression   TEXT NOT NULL DEFAULT '',
    enabled      BOOLEAN NOT NULL,
    position     INTEGER NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX rules_workspace ON rules (workspace_id, position);

CREATE TABLE rule_actions (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    rule_id       TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    action        TEXT NOT NULL,
    options       TEXT,
    mapping       TEXT,
    retry         TEXT,
    timeout_ms    INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    archived_at   TIMESTAMPTZ
);
CREATE INDEX rule_actions_rule ON rule_actions (rule_id, position);
CREATE INDEX rule_actions_connection ON rule_actions (connection_id);

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    data            TEXT NOT NULL,
    source          TEXT NOT NULL DEFAULT '',
    external_id     TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT,
    request_hash    TEXT NOT NULL DEFAULT '',
    occurred_at     TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    routed_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX events_idempotency ON events (workspace_id, idempotency_key);
CREATE INDEX events_workspace_id ON events (workspace_id, id);
CREATE INDEX events_workspace_type ON events (workspace_id, type, id);
CREATE INDEX events_unrouted ON events (received_at) WHERE routed_at IS NULL;

CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    rule_id          TEXT NOT NULL,
    rule_action_id   TEXT NOT NULL,
    connection_id    TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    failure_count    INTEGER NOT NULL DEFAULT 0,
    replay_count     INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    lease_until      TIMESTAMPTZ,
    last_error       TEXT NOT NULL DEFAULT '',
    last_error_class TEXT NOT NULL DEFAULT '',
    last_status_code INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX deliveries_event_action ON deliveries (event_id, rule_action_id);
CREATE INDEX deliveries_workspace_status ON deliveries (workspace_id, status, id);
CREATE INDEX deliveries_workspace_connection ON deliveries (workspace_id, connection_id, id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'retrying');

CREATE TABLE attempts (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    delivery_id      TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    duration_ms      BIGINT NOT NULL,
    request          TEXT NOT NULL DEFAULT '',
    status_code      INTEGER NOT NULL DEFAULT 0,
    response_excerpt TEXT NOT NULL DEFAULT '',
    error_class      TEXT NOT NULL DEFAULT '',
    error_message    TEXT NOT NULL DEFAULT '',
    retryable        BOOLEAN NOT NULL DEFAULT FALSE,
    outcome          TEXT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
