// Drives idsync's Crowd directory with the npm atlassian-crowd-client 2.0.0 and prints one JSON
// document of what the client got back, for crowd_clients.rs to assert on.
//
// Usage: node node_client.cjs read|events TOKEN
// Environment: CROWD_URL (ending in /crowd/<target>), CROWD_APP, CROWD_PASSWORD, NODE_PATH (the
// client's node_modules). The event feed, which the client has no method for, goes through the
// client's own `request` (its auth, its JSON checks).
"use strict";

const CrowdClient = require("atlassian-crowd-client");

function client(password) {
  return new CrowdClient({
    baseUrl: process.env.CROWD_URL,
    application: {
      name: process.env.CROWD_APP,
      password: password === undefined ? process.env.CROWD_PASSWORD : password,
    },
    // Attribute values are plain strings in idsync (the client's default parser is JSON.parse,
    // for values the client itself wrote as JSON).
    attributesParser: (v) => v,
  });
}

// Errors keep the client's own classification (`type` is Crowd's reason).
async function attempt(f) {
  try {
    return { ok: await f() };
  } catch (e) {
    return { error: e.message, type: e.type };
  }
}

async function read() {
  const c = client();
  const alice = await c.user.get("alice", true);
  const gina = await c.user.get("gina");
  const out = {
    alice: {
      username: alice.username,
      firstname: alice.firstname,
      lastname: alice.lastname,
      displayname: alice.displayname,
      email: alice.email,
      active: alice.active,
      attributes: alice.attributes,
    },
    gina_active: gina.active,
    attributes: (await c.user.attributes.list("alice")).attributes,
    alice_groups: (await c.user.groups.list("alice")).sort(),
    alice_nested_groups: (await c.user.groups.list("alice", true)).sort(),
    alice_in_engineering: await attempt(() => c.user.groups.get("alice", "engineering")),
    bob_in_engineering: await attempt(() => c.user.groups.get("bob", "engineering")),
    group: await c.group.get("engineering"),
    engineering_users: (await c.group.users.list("engineering")).sort(),
    everyone_nested_users: (await c.group.users.list("everyone", true)).sort(),
    everyone_nested_expanded: (await c.group.users.list("everyone", true, 0, 1000, true))
      .map((u) => ({ username: u.username, active: u.active }))
      .sort((a, b) => (a.username < b.username ? -1 : 1)),
    child_groups: await c.group.children.list("everyone"),
    parent_groups: await c.group.parents.list("engineering", true),
    membership_xml: await c.group.membership(),
    search_users: (await c.search.user('name = "*a*" and active = true')).sort(),
    search_users_expanded: (await c.search.user("email = bob*", true)).map((u) => u.email),
    search_groups: (await c.search.group("name = *e*")).sort(),
    search_or: (await c.search.user("name = alice or (name = bob and active = true)")).sort(),
    search_page_past_end: await c.search.user("name = *", false, 5000, 10),
    search_huge_max: (await c.search.user("name = *", false, 0, 2147483647)).length,
    search_malformed: await attempt(() => c.search.user("name = (")),
    user_missing: await attempt(() => c.user.get("no-such-user")),
    group_missing: await attempt(() => c.group.get("no-such-group")),
    wrong_password: await attempt(() => client("wrong").user.get("alice")),
    unknown_app: await attempt(() =>
      new CrowdClient({
        baseUrl: process.env.CROWD_URL,
        application: { name: "no-such-app", password: "x" },
      }).user.get("alice")
    ),
    authenticate: await attempt(() => c.authentication.authenticate("alice", "secret")),
    add_to_group_refused: await attempt(() => c.group.users.add("sales", "alice")),
    cookie: await attempt(() => c.config.cookie()),
    event: await c.request("GET", "/event"),
  };
  return out;
}

async function events(token) {
  const c = client();
  return { events: await attempt(() => c.request("GET", "/event/" + encodeURIComponent(token))) };
}

(async () => {
  const what = process.argv[2];
  const out = what === "read" ? await read() : await events(process.argv[3]);
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((e) => {
  process.stderr.write(`driver failed: ${e.stack || e} (type ${e.type})\n`);
  process.exit(1);
});
