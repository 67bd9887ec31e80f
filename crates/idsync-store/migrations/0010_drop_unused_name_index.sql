-- Every lookup by userName folds case (users_by_lower_name); the case-exact index was never
-- read, and every user written paid for it.
DROP INDEX users_by_name;
