-- Services that verify keyward's tokens (API.md section 7): the credentials
-- introspection and the revocation feed require. Only an HMAC-SHA-256 of the
-- secret is kept: the secret is 256 random bits, so a slow password hash
-- would add nothing but cost to every check. Every instance holds the table
-- in memory and reloads it on a NOTIFY on `keyward_services`, sent by the
-- statement that creates or deletes a row.
CREATE TABLE services (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    client_id   text        NOT NULL UNIQUE,
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL
);
-- Names are unique without regard to case, as usernames are.
CREATE UNIQUE INDEX services_name ON services (lower(name));
