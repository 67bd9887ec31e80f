// SCIMMY (npm) with its Express routers, serving on 127.0.0.1:PEER_PORT for idsync's tests.
// SCIMMY parses, validates, filters and patches; this file only keeps the resources in memory
// (SCIMMY leaves storage to the application). Modules come from NODE_PATH (scripts/peers).
"use strict";
const crypto = require("node:crypto");
const express = require("express");
const SCIMMY = require("scimmy").default ?? require("scimmy");
const SCIMMYRouters = require("scimmy-routers").default ?? require("scimmy-routers");

const token = process.env.PEER_TOKEN || "";
const port = Number(process.env.PEER_PORT || "8000");

// Uniqueness is the application's to keep (SCIMMY leaves storage to it): userName is unique
// case-insensitively (RFC 7643 4.1.1), displayName as given.
const unique = { User: (o) => String(o.userName || "").toLowerCase(), Group: (o) => o.displayName };

function store(Resource, kind) {
  const items = new Map();
  const notFound = (id) => new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);
  Resource.ingress((resource, instance) => {
    const now = new Date().toISOString();
    const key = unique[kind](instance);
    for (const [id, other] of items) {
      if (id !== resource.id && unique[kind](other) === key) {
        throw new SCIMMY.Types.Error(409, "uniqueness", `${kind} ${key} already exists`);
      }
    }
    if (resource.id) {
      const old = items.get(resource.id);
      if (!old) throw notFound(resource.id);
      const next = { ...instance, id: resource.id, meta: { ...old.meta, lastModified: now } };
      items.set(resource.id, next);
      return next;
    }
    const id = crypto.randomUUID();
    const next = { ...instance, id, meta: { created: now, lastModified: now } };
    items.set(id, next);
    return next;
  });
  Resource.egress((resource) => {
    if (resource.id) {
      const found = items.get(resource.id);
      if (!found) throw notFound(resource.id);
      return found;
    }
    const all = [...items.values()];
    return resource.filter ? resource.filter.match(all) : all;
  });
  Resource.degress((resource) => {
    if (!items.delete(resource.id)) throw notFound(resource.id);
  });
  SCIMMY.Resources.declare(Resource);
  return items;
}

store(SCIMMY.Resources.User, "User");
store(SCIMMY.Resources.Group, "Group");

const app = express();
app.use(
  "/scim/v2",
  new SCIMMYRouters({
    type: "bearer",
    docUri: "http://127.0.0.1/",
    handler: (request) => {
      const given = (request.header("Authorization") || "").replace(/^Bearer /, "");
      const a = Buffer.from(given);
      const b = Buffer.from(token);
      if (!token || a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
        throw new Error("Authorization not accepted");
      }
      return "idsync-test";
    },
  })
);
app.listen(port, "127.0.0.1");
