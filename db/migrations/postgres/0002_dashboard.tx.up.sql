-- Dashboard sessions. id is the SHA-256 (hex) of the cookie's random token, so a copy of
-- this table does not let anyone sign in.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    workspace_id TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT '',
    ip           TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Failed sign-ins, keyed by "email:…" and "ip:…", to slow down password guessing.
CREATE TABLE login_failures (
    key       TEXT NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, failed_at);

-- One-time invitation links; only the token's SHA-256 is stored.
CREATE TABLE invites (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT '',
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    accepted_at  TIMESTAMPTZ,
    accepted_by  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX invites_workspace ON invites (workspace_id, created_at);

CREATE INDEX memberships_user ON memberships (user_id);

-- Dashboard reads: events by time (overview counts and chart, time-range filters),
-- per-destination health (last success, last error, counts by status in a window) and
-- failed attempts by time (the overview chart).
CREATE INDEX events_workspace_received ON events (workspace_id, received_at);
CREATE INDEX deliveries_workspace_connection_status ON deliveries (workspace_id, connection_id, status, updated_at);
CREATE INDEX attempts_workspace_started ON attempts (workspace_id, started_at, outcome);
