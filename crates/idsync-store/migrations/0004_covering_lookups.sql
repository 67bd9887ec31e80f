-- Lookups by member and by email as covering indexes, so the query planner picks them even
-- before it has statistics (a fresh store filled by pushes: a user's groups were found by a
-- scan of every membership of the directory).
DROP INDEX memberships_by_member;
CREATE INDEX memberships_by_member ON memberships (dir, member_kind, member_id, group_id);
DROP INDEX user_emails_by_email;
CREATE INDEX user_emails_by_email ON user_emails (dir, email, user_id);
