// Loads an npm package from PEER_MODULES (target/oidc-peer/node_modules, installed by
// scripts/peers): ES modules do not read NODE_PATH.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const req = createRequire(`${process.env.PEER_MODULES}/`);
export const load = (name) => import(pathToFileURL(req.resolve(name)).href);
