-- Nested groups of a flow whose target serves them (a crowd target with nested_groups, issue 17,
-- decision 0033): per flow, the groups that are direct members of a group, by ledger key. Few
-- rows (one per group-in-group edge), so plain text keys rather than numbers.
CREATE TABLE ledger_child_groups (
    flow TEXT NOT NULL,
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (flow, parent, child)
) WITHOUT ROWID;
-- A group deleted from the ledger leaves every group it was in.
CREATE INDEX ledger_child_groups_by_child ON ledger_child_groups (flow, child);
