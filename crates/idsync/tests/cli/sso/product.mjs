// npm openid-client (6.x) as a product (Jira's SSO app, say) that signs its users in through
// idsync's OpenID provider. Two steps, the browser in between being the test's:
//   PRODUCT_STEP=start  -> prints {"url", "verifier", "state", "nonce"}: where to send the browser
//   PRODUCT_STEP=finish -> PRODUCT_CALLBACK (the URL idsync redirected back to) and the values
//                          of the start: redeems the code, validates the ID token (signature
//                          with idsync's JWKS, issuer, audience, nonce), reads userinfo;
//                          prints {"claims", "userinfo"}, or fails with the error.
import { load } from '../../../../idsync-oidc/tests/oidc/peers/load.mjs';

const client = await load('openid-client');
const env = process.env;
const config = await client.discovery(
  new URL(env.OP_ISSUER),
  env.OP_CLIENT_ID,
  undefined,
  client.ClientSecretBasic(env.OP_CLIENT_SECRET),
  { execute: [client.allowInsecureRequests] },
);

if (env.PRODUCT_STEP === 'start') {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: env.OP_REDIRECT_URI,
    scope: 'openid profile email groups',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  process.stdout.write(JSON.stringify({ url: url.href, verifier, state, nonce }));
} else {
  const tokens = await client.authorizationCodeGrant(config, new URL(env.PRODUCT_CALLBACK), {
    pkceCodeVerifier: env.PRODUCT_VERIFIER,
    expectedState: env.PRODUCT_STATE,
    expectedNonce: env.PRODUCT_NONCE,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  process.stdout.write(JSON.stringify({ claims, userinfo }));
}
