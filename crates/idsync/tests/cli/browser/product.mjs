// A tiny product (a relying party page, as Jira's SSO app is one) with a "Log in" button,
// signing its users in through idsync with npm openid-client (6.x): authorization code with
// PKCE, state and nonce; the ID token validated with idsync's JWKS; the page after the sign-in
// shows the user and the group names idsync gave it.
//   PRODUCT_PORT      where to listen on 127.0.0.1
//   OP_ISSUER, OP_CLIENT_ID, OP_CLIENT_SECRET: idsync's issuer and this product's registration
//   CROWD_URL, CROWD_APP, CROWD_PASSWORD (optional): the Crowd directory the product reads its
//     users from (as Jira does); at the callback, before redeeming the code, the product looks
//     the user's groups up there and shows them too: was the user there when the login came?
// Prints {"url": ...} once listening; each sign-in's claims go to stdout as a JSON line.
import http from 'node:http';
import { load } from '../../../../idsync-oidc/tests/oidc/peers/load.mjs';

const client = await load('openid-client');
const env = process.env;
const base = `http://127.0.0.1:${env.PRODUCT_PORT}`;
const redirectUri = `${base}/callback`;
let config;
const pending = new Map();

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Product</title></head><body><h1>Jira (test product)</h1>${body}</body></html>`);
};

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, base);
    config ??= await client.discovery(new URL(env.OP_ISSUER), env.OP_CLIENT_ID, undefined,
      client.ClientSecretBasic(env.OP_CLIENT_SECRET), { execute: [client.allowInsecureRequests] });
    if (url.pathname === '/') {
      page(res, 200, '<p>Not signed in.</p><form method="get" action="/login"><button id="login" type="submit">Log in</button></form>');
    } else if (url.pathname === '/login') {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      pending.set(state, { verifier, nonce });
      const to = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: 'openid profile email groups',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      res.writeHead(303, { location: to.href });
      res.end();
    } else if (url.pathname === '/callback') {
      const state = url.searchParams.get('state');
      const p = pending.get(state);
      pending.delete(state);
      if (!p) return page(res, 400, '<p id="error">no sign-in waits for this answer</p>');
      // The directory as the product sees it the moment the login arrives (the username is
      // not known before the code is redeemed, so every user's groups are read, then filtered).
      const directory = env.CROWD_URL ? await crowdGroupsByUser() : null;
      const tokens = await client.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: p.verifier,
        expectedState: state,
        expectedNonce: p.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      const inCrowd = directory?.get(claims.sub) ?? [];
      process.stdout.write(`${JSON.stringify({ claims, inCrowd })}\n`);
      const groups = (claims.groups ?? []).map((g) => `<li class="group">${esc(g)}</li>`).join('');
      const crowd = directory === null ? ''
        : `<p>In the Crowd directory when the login arrived: <span id="in-crowd">${directory.has(claims.sub)}</span></p><ul id="crowd">${inCrowd.map((g) => `<li class="crowd-group">${esc(g)}</li>`).join('')}</ul>`;
      page(res, 200, `<p>Signed in as <b id="user">${esc(claims.sub)}</b> (${esc(claims.name ?? '')}, ${esc(claims.email ?? '')})</p><ul id="groups">${groups}</ul>${crowd}`);
    } else {
      page(res, 404, '<p>not found</p>');
    }
  } catch (e) {
    page(res, 500, `<p id="error">${esc(e?.message ?? e)}</p>`);
  }
});
// Every user of the Crowd directory with its groups (nested), by name.
async function crowdGroupsByUser() {
  const auth = `Basic ${Buffer.from(`${env.CROWD_APP}:${env.CROWD_PASSWORD}`).toString('base64')}`;
  const get = async (path) => {
    const r = await fetch(`${env.CROWD_URL}/rest/usermanagement/1${path}`, { headers: { authorization: auth, accept: 'application/json' } });
    if (!r.ok) throw new Error(`Crowd answered ${r.status} to ${path}`);
    return r.json();
  };
  const users = (await get('/search?entity-type=user&start-index=0&max-results=10000')).users ?? [];
  const out = new Map();
  for (const u of users) {
    const g = await get(`/user/group/nested?username=${encodeURIComponent(u.name)}&max-results=1000`);
    out.set(u.name, (g.groups ?? []).map((x) => x.name).sort());
  }
  return out;
}

server.listen(Number(env.PRODUCT_PORT), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ url: base })}\n`);
});
