// npm openid-client (6.x) as a product signing in through idsync's OpenID provider: discovery,
// the authorization code flow with PKCE, state and nonce, the ID token's validation, userinfo.
// The authorization request is followed without a browser: the test's provider signs a fixed
// user in at once and redirects back with the code. Prints {"claims", "userinfo"} as JSON.
import { load } from './load.mjs';

const client = await load('openid-client');
const issuer = new URL(process.env.OP_ISSUER);
const secret = process.env.OP_CLIENT_SECRET;
const auth = process.env.OP_CLIENT_AUTH === 'basic'
  ? client.ClientSecretBasic(secret)
  : client.ClientSecretPost(secret);
const config = await client.discovery(issuer, process.env.OP_CLIENT_ID, undefined, auth, {
  execute: [client.allowInsecureRequests],
});

const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const url = client.buildAuthorizationUrl(config, {
  redirect_uri: process.env.OP_REDIRECT_URI,
  scope: 'openid profile email groups',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
});
const answer = await fetch(url, { redirect: 'manual' });
const location = answer.headers.get('location');
if (!location) throw new Error(`the authorization endpoint answered ${answer.status} without a redirect`);
const tokens = await client.authorizationCodeGrant(config, new URL(location), {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
});
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
process.stdout.write(JSON.stringify({ claims, userinfo }));
