// Headless Chromium (Debian's, driven by npm playwright-core) through the whole single sign-on:
// the product's "Log in" button, the identity provider's login form (the Graph simulator's,
// Entra's field ids), back through idsync to the product, whose page shows the user and groups.
//   BROWSER_MODULES   target/browser-peer/node_modules
//   PRODUCT_URL, SIGNIN_USER, SIGNIN_PASSWORD, SCREENSHOT (a .png path), USER_DATA_DIR (fresh)
// Prints {"url", "user", "groups", "inCrowd", "offLoopback", "pages"} on success; fails with the error.
import { createRequire } from 'node:module';

const env = process.env;
const req = createRequire(`${env.BROWSER_MODULES}/`);
const { chromium } = req('playwright-core');

const context = await chromium.launchPersistentContext(env.USER_DATA_DIR, {
  executablePath: env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // Nothing but loopback: every other host name resolves nowhere.
    '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
  ],
});
// Chromium talks to 127.0.0.1 only: any other request is aborted and reported.
const offLoopback = [];
await context.route('**/*', (route) => {
  const u = new URL(route.request().url());
  if (u.hostname === '127.0.0.1' || u.protocol === 'data:' || u.protocol === 'about:') return route.continue();
  offLoopback.push(u.href);
  return route.abort();
});
const pages = [];
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(60000);
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) pages.push(f.url()); });
  await page.goto(env.PRODUCT_URL);
  await page.click('#login');
  // The identity provider's login page.
  await page.waitForSelector('#i0118');
  await page.fill('#i0116', env.SIGNIN_USER);
  await page.fill('#i0118', env.SIGNIN_PASSWORD);
  await page.click('#idSIButton9');
  // Back at the product, signed in.
  await page.waitForSelector('#user');
  const user = await page.textContent('#user');
  const groups = await page.$$eval('li.group', (els) => els.map((e) => e.textContent));
  const inCrowd = await page.$$eval('li.crowd-group', (els) => els.map((e) => e.textContent));
  await page.screenshot({ path: env.SCREENSHOT, fullPage: true });
  process.stdout.write(JSON.stringify({ url: page.url(), user, groups, inCrowd, offLoopback, pages }));
} finally {
  await context.close();
}
