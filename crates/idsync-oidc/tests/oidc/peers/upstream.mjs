// npm oidc-provider as the upstream OpenID provider idsync's relying party signs in at, in the
// style of Entra ID (PEER_STYLE=entra) or of an Azure AD B2C user flow (PEER_STYLE=b2c).
// Listens on 127.0.0.1 with a free port and prints {"port", "issuer"} on its first line.
// Its devInteractions pages sign in any login name; the accounts below say what each carries.
// POST {issuer}/__rotate replaces the signing key (the old one stays published second);
// GET {issuer}/__stats says how many times the JWKS was read.
import http from 'node:http';

// stdout carries the one line the test reads; oidc-provider's notices go to stderr.
console.log = console.error;
console.info = console.error;
console.warn = console.error;
import { load } from './load.mjs';

const { default: Provider } = await load('oidc-provider');
const jose = await load('jose');

const style = process.env.PEER_STYLE;
const redirectUri = process.env.PEER_REDIRECT_URI;
const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const policy = 'B2C_1_signin';

const accounts = {
  entra: {
    alice: {
      oid: '00000000-0000-0000-0000-00000000a11c', tid: tenant,
      preferred_username: 'alice@contoso.example', name: 'Alice Liddell', email: 'alice@contoso.example',
      groups: ['6f1b0c2e-0000-0000-0000-000000000001', '6f1b0c2e-0000-0000-0000-000000000002'],
      roles: ['Jira.Admin'],
    },
    bob: {
      oid: '00000000-0000-0000-0000-000000000b0b', tid: tenant,
      preferred_username: 'bob@contoso.example', name: 'Bob',
      // More groups than fit in a token: Entra names the claim and where to read it instead.
      _claim_names: { groups: 'src1' },
      _claim_sources: { src1: { endpoint: `https://graph.microsoft.com/v1.0/users/00000000-0000-0000-0000-000000000b0b/getMemberObjects` } },
    },
    mallory: {
      oid: '00000000-0000-0000-0000-0000000ma11', tid: '11111111-2222-3333-4444-555555555555',
      preferred_username: 'mallory@fabrikam.example', name: 'Mallory',
    },
  },
  b2c: {
    carol: {
      oid: '00000000-0000-0000-0000-0000000ca201', tfp: policy,
      emails: ['carol@example.org', 'carol.second@example.org'], name: 'Carol Customer',
      given_name: 'Carol', family_name: 'Customer',
    },
    dave: {
      oid: '00000000-0000-0000-0000-00000000da7e', tfp: 'B2C_1_other_flow', emails: ['dave@example.org'],
    },
  },
}[style];

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `k-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`, alg: 'RS256', use: 'sig' };
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const prefix = style === 'entra' ? `/${tenant}/v2.0` : `/tfp/${tenant}/${policy.toLowerCase()}/v2.0`;
const issuer = `http://127.0.0.1:${port}${prefix}`;

let keys = [await newKey()];
let jwksReads = 0;
let handler;

function makeProvider() {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'idsync', client_secret: 'upstream-secret-post', redirect_uris: [redirectUri],
        token_endpoint_auth_method: 'client_secret_post',
      },
      {
        client_id: 'idsync-basic', client_secret: 'upstream-secret-basic', redirect_uris: [redirectUri],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub', 'oid', 'tid', 'tfp', 'groups', 'roles', 'emails'],
      profile: ['name', 'preferred_username', 'given_name', 'family_name'],
      email: ['email'],
    },
    // oidc-provider's `sub` is the account id, here the login name (Entra's `sub` is an opaque
    // pairwise value and its `oid` the user's id; B2C's `sub` is the user's id).
    async findAccount(ctx, id) {
      const account = accounts[id] ?? {};
      return {
        accountId: id,
        async claims() {
          return { sub: id, ...account };
        },
      };
    },
  });
  return provider.callback();
}

handler = makeProvider();
server.on('request', async (req, res) => {
  if (!req.url.startsWith(prefix)) {
    res.writeHead(404).end();
    return;
  }
  const rest = req.url.slice(prefix.length) || '/';
  if (rest === '/__rotate' && req.method === 'POST') {
    keys = [await newKey(), keys[0]];
    handler = makeProvider();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kid: keys[0].kid }));
    return;
  }
  if (rest === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jwks: jwksReads }));
    return;
  }
  if (rest.startsWith('/jwks')) jwksReads += 1;
  req.originalUrl = req.url;
  req.url = rest;
  handler(req, res);
});

process.stdout.write(`${JSON.stringify({ port, issuer, kid: keys[0].kid })}\n`);
