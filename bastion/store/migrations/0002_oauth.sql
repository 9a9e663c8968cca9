-- The OAuth 2.0 authorization server: clients, token signing keys and revoked access tokens.
-- Client secrets are stored as SHA-256 digests only (they are 256-bit random values, see
-- bastion/oauth/clients.py). Signing keys hold a PKCS#8 PEM private key, encrypted with the
-- configured pepper when there is one (see bastion/oauth/keys.py).

CREATE TABLE bastion_oauth_clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_digest TEXT NOT NULL,
    scopes_json TEXT NOT NULL DEFAULT '[]',
    grant_types_json TEXT NOT NULL DEFAULT '["client_credentials"]',
    audience TEXT,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE bastion_oauth_signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    encrypted INTEGER NOT NULL DEFAULT 0,
    public_jwk TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    retire_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE bastion_oauth_revocations (
    jti TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION NOT NULL
);
