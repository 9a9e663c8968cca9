-- Configs applied through the admin API (PUT /admin/config), so that every node of a cluster,
-- and every worker process of a node, applies them too (bastion/admin/store_ops.py).
-- `document` is the JSON document as submitted: masked secrets ("********") are restored by
-- each node from its own running config, and `${ENV}` references are never expanded from the
-- environment (documents sent to the API are read with an empty one). It can still hold a
-- secret the operator typed, so it is never logged and never returned by the admin API.
-- `id` is the cluster-wide revision number, chosen by the writer (latest + 1).

CREATE TABLE bastion_config_revisions (
    id INTEGER PRIMARY KEY,
    document TEXT NOT NULL,
    actor TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
