-- The form of the target user ids in a flow's ledger, as the target names it (issue 18:
-- Bitbucket's numeric user ids became usernames). NULL: written before the target named one;
-- a target whose form differs from the recorded one has the ledger translated once.
ALTER TABLE flows ADD COLUMN user_id_form TEXT;
