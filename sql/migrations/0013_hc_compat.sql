-- healthchecks.io-compatible ping URLs (docs/healthchecks-compat.md).
--
-- 1. Every heartbeat gets a random UUID, its healthchecks.io "check UUID": the
--    secret in `/ping/<uuid>`. It is not the primary key, which other surfaces
--    (alerts, the dashboard, read-only keys) show freely.
ALTER TABLE heartbeat.heartbeat
    ADD COLUMN ping_uuid uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE heartbeat.heartbeat ADD CONSTRAINT heartbeat_ping_uuid_key UNIQUE (ping_uuid);

-- 2. A slug, for `/ping/<ping_key>/<slug>`: a-z, 0-9, '-' and '_', derived from
--    the name the way healthchecks.io's v1/v2 API derives it (Django's slugify,
--    without its ASCII transliteration: other characters are dropped). Not
--    unique: two heartbeats sharing one make the slug URL answer 409.
CREATE FUNCTION heartbeat.slugify(name text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT btrim(regexp_replace(regexp_replace(lower(name), '[^a-z0-9_\s-]', '', 'g'),
                                '[-\s]+', '-', 'g'), '-_')
$$;
ALTER TABLE heartbeat.heartbeat ADD COLUMN slug text;
UPDATE heartbeat.heartbeat SET slug = heartbeat.slugify(name);
ALTER TABLE heartbeat.heartbeat ALTER COLUMN slug SET NOT NULL;

-- A row inserted without a slug (every insert but healthchecks.io's, which may
-- choose one) gets its name's.
CREATE FUNCTION heartbeat.derive_slug() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.slug IS NULL THEN
        NEW.slug := heartbeat.slugify(NEW.name);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER heartbeat_derive_slug BEFORE INSERT ON heartbeat.heartbeat
    FOR EACH ROW EXECUTE FUNCTION heartbeat.derive_slug();
CREATE INDEX heartbeat_slug_idx ON heartbeat.heartbeat (project_id, slug);

-- 3. A project's ping key: 22 URL-safe characters (122 random bits), the secret
--    half of a slug URL.
CREATE FUNCTION heartbeat.new_ping_key() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT translate(rtrim(encode(decode(replace(gen_random_uuid()::text, '-', ''), 'hex'),
                                  'base64'), '='), '+/', '-_')
$$;
ALTER TABLE heartbeat.project ADD COLUMN ping_key text NOT NULL DEFAULT heartbeat.new_ping_key();
ALTER TABLE heartbeat.project ADD CONSTRAINT project_ping_key_key UNIQUE (ping_key);
