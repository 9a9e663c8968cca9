-- The authorization-code and refresh-token grants: registered redirect URIs, single-use codes
-- and refresh-token families. Codes and refresh tokens are stored as SHA-256 digests only
-- (256-bit random values, see bastion/oauth/grant_store.py). A public client is one whose
-- secret_digest is the empty string: no secret can match it, so it authenticates by PKCE only.

CREATE TABLE bastion_oauth_redirect_uris (
    client_id TEXT NOT NULL REFERENCES bastion_oauth_clients (id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    PRIMARY KEY (client_id, redirect_uri)
);

CREATE TABLE bastion_oauth_codes (
    code_digest TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    family_id TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    used_at DOUBLE PRECISION,
    access_jti TEXT,
    access_expires_at DOUBLE PRECISION
);

CREATE TABLE bastion_oauth_refresh_tokens (
    token_digest TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    used_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
);

CREATE INDEX bastion_oauth_refresh_tokens_family ON bastion_oauth_refresh_tokens (family_id);
