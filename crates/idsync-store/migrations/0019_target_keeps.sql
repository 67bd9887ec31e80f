-- What each target's answers showed it keeps of what it was sent (a create, a PUT or PATCH
-- answered with the resource): kept = 1 when given back, 0 when not. A reconcile compares only
-- what is kept, and an attribute known kept is repaired when it is missing. Issue 16, decision 0029.
CREATE TABLE target_keeps (
    target TEXT NOT NULL,
    resource TEXT NOT NULL,
    path TEXT NOT NULL,
    kept INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    learned_ms BIGINT NOT NULL,
    PRIMARY KEY (target, resource, path)
);
