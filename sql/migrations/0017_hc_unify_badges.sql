-- healthchecks.io compatibility, second part (docs/healthchecks-compat.md,
-- docs/decisions.md §26).
--
-- 1. One set of tags and one channel routing per heartbeat. The healthchecks.io
--    Management API kept its own copies (hc_tags, hc_channels, migration 0014),
--    so a tag set through one API did not show through the other. They are
--    folded into the heartbeat's own `tags` and `channels` and dropped.
--
--    Tags: the space-separated words of hc_tags join `tags`, sorted and without
--    duplicates, as long as each is a tag Heartbeat accepts (1 to 50 letters,
--    digits or -_.:/) and the heartbeat keeps at most 20; other words are not
--    carried over (the API refuses them from now on).
UPDATE heartbeat.heartbeat h SET tags = merged.tags
FROM (
    SELECT heartbeat_id, array_agg(tag ORDER BY tag) AS tags
    FROM (
        SELECT DISTINCT heartbeat_id, tag
        FROM heartbeat.heartbeat,
             LATERAL unnest(tags || regexp_split_to_array(btrim(hc_tags), '\s+')) AS tag
        WHERE hc_tags ~ '\S' AND tag ~ '^[A-Za-z0-9._:/-]{1,50}$'
    ) t
    GROUP BY heartbeat_id
    HAVING count(*) <= 20
) merged
WHERE h.heartbeat_id = merged.heartbeat_id;

--    Channels: hc_channels could only hold "*" (the default: every channel, as
--    `channels` NULL says) or "" (none); a list named rows of a table that no
--    longer existed and was refused. "" becomes the empty list.
UPDATE heartbeat.heartbeat SET channels = '{}' WHERE hc_channels = '';

ALTER TABLE heartbeat.heartbeat DROP COLUMN hc_tags, DROP COLUMN hc_channels;

-- 2. Badges. A project's `badge_key` is the public half of its badge URLs
--    (`/badge/<badge_key>/<signature>/<tag>.<fmt>`); each URL's signature is an
--    HMAC of the tag under `badge_secret`, which never leaves the database and
--    the daemon, so one badge URL does not lead to another tag's. A heartbeat's
--    `badge_uuid` names its own badge (`/b/<2|3>/<badge_uuid>.<fmt>`), apart
--    from its ping UUID, which is a secret.
ALTER TABLE heartbeat.project
    ADD COLUMN badge_key text NOT NULL DEFAULT heartbeat.new_ping_key(),
    ADD COLUMN badge_secret text NOT NULL
        DEFAULT encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text,
                                      '-', ''), 'hex'), 'hex');
ALTER TABLE heartbeat.project ADD CONSTRAINT project_badge_key_key UNIQUE (badge_key);

ALTER TABLE heartbeat.heartbeat ADD COLUMN badge_uuid uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE heartbeat.heartbeat ADD CONSTRAINT heartbeat_badge_uuid_key UNIQUE (badge_uuid);
