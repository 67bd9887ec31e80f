-- No index by member (decision 0016): which groups a member is in is kept in memory, per
-- directory and per flow, built from the primary key when first asked and kept up to date by
-- the writer. Each of these indexes made a first sync rewrite about one page per membership
-- added at every commit (its entries land in random places): at 100,000 users and two
-- million memberships that was more than half of the time of the whole sync.
DROP INDEX memberships_by_member;
DROP INDEX ledger_members_by_user;
