-- What each ledger write of a flow that feeds a crowd target changed, by ledger version
-- (issue 17, decision 0031): the served directory follows the ledger in place from it. Each
-- such version has a row of kind 'v' (a version without one was written otherwise: the
-- directory is built again); 'x' says the version changed too much to follow. The others name
-- what changed: 'u' a user, 'U' a user whose memberships went (deleted), 'g' a group, 'G' a
-- group whose memberships went (deleted or created again), 'm' the memberships of group `key`
-- with the users of the JSON array `users`.
CREATE TABLE crowd_ledger_changes (
    flow TEXT NOT NULL,
    version BIGINT NOT NULL,
    n INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    users TEXT,
    PRIMARY KEY (flow, version, n)
) WITHOUT ROWID;
