-- Consumers, their credentials and the audit log of every change.
-- One schema for SQLite and PostgreSQL: portable types only; @AUTO_ID@ is the one dialect
-- difference (an auto-incrementing integer key), filled in by bastion/store/migrate.py.
-- Secrets are never stored: API keys as HMAC-SHA256(pepper, key), passwords as argon2id.

CREATE TABLE bastion_consumers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    groups_json TEXT NOT NULL DEFAULT '[]',
    metadata_json TEXT NOT NULL DEFAULT '{}',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE bastion_api_keys (
    id TEXT PRIMARY KEY,
    consumer_id TEXT NOT NULL REFERENCES bastion_consumers (id),
    digest TEXT NOT NULL,
    pepper_id TEXT NOT NULL,
    label TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
);

CREATE INDEX bastion_api_keys_consumer ON bastion_api_keys (consumer_id);

CREATE TABLE bastion_passwords (
    consumer_id TEXT PRIMARY KEY REFERENCES bastion_consumers (id),
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE bastion_audit (
    id @AUTO_ID@,
    at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT
);
