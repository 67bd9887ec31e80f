-- The request form each target takes for each kind of change, as learned from its answers
-- (a SCIM service that answers PATCH 501 takes PUT): later runs start with it. Decision 0026.
CREATE TABLE target_forms (
    target TEXT NOT NULL,
    op_kind TEXT NOT NULL,
    form TEXT NOT NULL,
    reason TEXT NOT NULL,
    learned_ms BIGINT NOT NULL,
    PRIMARY KEY (target, op_kind)
);
