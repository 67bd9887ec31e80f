// Builds ID tokens with npm `jose` (a real JOSE implementation) for the relying party's
// security tests: well-signed ones and the malicious kinds. Reads a JSON array of requests on
// stdin, writes a JSON array of answers:
//   {"op": "keys", "alg": "RS256"|"ES256"|"PS256"}  -> {"private": JWK, "public": JWK, "publicPem": PEM}
//   {"op": "sign", "alg": ..., "key": private JWK, "header": {...}, "payload": {...}} -> {"token"}
//   {"op": "hmac", "secret": "text", "header": {...}, "payload": {...}} -> {"token"} (HS256)
//   {"op": "none", "payload": {...}} -> {"token"} (an unsecured JWT, alg "none")
import { load } from './load.mjs';

const jose = await load('jose');
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const requests = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const out = [];
for (const r of requests) {
  switch (r.op) {
    case 'keys': {
      const { privateKey, publicKey } = await jose.generateKeyPair(r.alg, { extractable: true });
      const kid = `forge-${Math.random().toString(36).slice(2, 10)}`;
      out.push({
        private: { ...(await jose.exportJWK(privateKey)), kid, alg: r.alg },
        public: { ...(await jose.exportJWK(publicKey)), kid, alg: r.alg, use: 'sig' },
        publicPem: await jose.exportSPKI(publicKey),
      });
      break;
    }
    case 'sign': {
      const key = await jose.importJWK(r.key, r.alg);
      const token = await new jose.SignJWT(r.payload)
        .setProtectedHeader({ alg: r.alg, ...r.header })
        .sign(key);
      out.push({ token });
      break;
    }
    case 'hmac': {
      const token = await new jose.SignJWT(r.payload)
        .setProtectedHeader({ alg: 'HS256', ...r.header })
        .sign(new TextEncoder().encode(r.secret));
      out.push({ token });
      break;
    }
    case 'none': {
      out.push({ token: new jose.UnsecuredJWT(r.payload).encode() });
      break;
    }
    default:
      throw new Error(`unknown op ${r.op}`);
  }
}
process.stdout.write(JSON.stringify(out));
