// Drives the dashboard in Debian's Chromium, headless, as a person would:
// signs in, submits jobs from the form, watches them in the list and on
// their pages, looks at the workers, signs out. Run by test_dashboard.py.
//
//   BX_DASH_URL=http://127.0.0.1:PORT BX_DASH_TOKEN=... BX_DASH_PROFILE=DIR \
//   BX_DASH_SHOTS=DIR node drive.mjs
//
// Prints one JSON line of what it saw; exits non-zero on the first thing
// that is not as it should be.
import { chromium } from 'playwright-core';
import path from 'node:path';

const BASE = process.env.BX_DASH_URL;
const TOKEN = process.env.BX_DASH_TOKEN;
const PROFILE = process.env.BX_DASH_PROFILE;
const SHOTS = process.env.BX_DASH_SHOTS;
const CHROMIUM = process.env.BX_CHROMIUM || '/usr/bin/chromium';
if (!BASE || !TOKEN || !PROFILE || !SHOTS) {
  console.error('drive.mjs: set BX_DASH_URL, BX_DASH_TOKEN, BX_DASH_PROFILE and BX_DASH_SHOTS');
  process.exit(2);
}

const log = (...a) => console.error('drive:', ...a);
const fail = (msg) => {
  throw new Error(msg);
};

// Flags for a closed network and a throwaway profile: no update checks,
// no sync, no component downloads, nothing but the page under test.
const context = await chromium.launchPersistentContext(PROFILE, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  timeout: 60000,
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(30000);

// Anything the page itself complains about is a failure; a fetch the page
// aborted on purpose (leaving a view) is not.
const problems = [];
// Answers the steps below ask for (and the browser logs as errors): the
// refused token's 401, the probe for GET /v1/queues, the faked ones.
const expected = [/\/v1\/queues$/];
page.on('pageerror', (e) => problems.push('page error: ' + e.message));
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  const url = m.location().url || '';
  if (/status of 401/.test(m.text()) || expected.some((re) => re.test(url))) return;
  problems.push('console error: ' + m.text() + ' ' + url);
});
page.on('requestfailed', (r) => {
  const why = (r.failure() && r.failure().errorText) || '';
  if (!/ERR_ABORTED/.test(why)) problems.push('request failed: ' + r.url() + ' ' + why);
});
const external = [];
page.on('request', (r) => {
  const u = r.url();
  if (!u.startsWith(BASE) && !u.startsWith('data:')) external.push(u);
});

const seen = {};
try {
  // --- sign in: a wrong token is refused and not kept; the right one is
  await page.goto(BASE + '/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('API token').fill('not-a-token');
  await page.getByRole('button', { name: 'Use token' }).click();
  await page.getByText('does not know this token').waitFor();
  await page.screenshot({ path: path.join(SHOTS, 'dashboard-signin.png') });
  if (await page.evaluate(() => sessionStorage.getItem('bx.token'))) fail('a refused token was kept');

  await page.getByLabel('API token').fill(TOKEN);
  await page.getByRole('button', { name: 'Use token' }).click();
  await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
  const store = await page.evaluate(() => ({
    session: sessionStorage.getItem('bx.token'),
    local: localStorage.length,
    cookie: document.cookie,
  }));
  if (store.session !== TOKEN) fail('the token is not in sessionStorage');
  if (store.local !== 0 || store.cookie !== '') fail('something was kept outside sessionStorage');
  await page.getByText(/^Ready:/).waitFor();
  log('signed in');

  // --- submit from the form, see it succeed in the list
  await page.getByLabel('Command', { exact: true }).fill('echo hello-dashboard');
  await page.getByRole('button', { name: 'Submit job' }).click();
  const link = page.locator('#submitted-link');
  await link.waitFor();
  const id = (await link.textContent()).trim();
  if (!/^[0-9a-f-]{36}$/.test(id)) fail('not a job id: ' + id);
  seen.job_id = id;
  log('submitted', id);
  const row = page.locator(`#jobs-body tr[data-id="${id}"]`);
  await row.waitFor();
  await page.locator(`#jobs-body tr[data-id="${id}"][data-state="succeeded"]`).waitFor({ timeout: 60000 });
  const rowText = await row.innerText();
  if (!rowText.includes('echo hello-dashboard') || !rowText.includes('succeeded')) fail('row: ' + rowText);
  if (!/\d+(\.\d+)? (ms|s)/.test(rowText)) fail('no duration in the row: ' + rowText);
  seen.row = rowText.replace(/\s+/g, ' ');
  await page.screenshot({ path: path.join(SHOTS, 'dashboard-jobs.png'), fullPage: true });
  log('succeeded in the list');

  // --- its page: status and output
  await row.getByRole('link').click();
  await page.waitForURL((u) => u.hash === '#/jobs/' + id);
  await page.getByRole('heading', { name: /^Job / }).waitFor();
  await page.locator('#job-stdout', { hasText: 'hello-dashboard' }).waitFor();
  await page.locator('#job-state', { hasText: 'succeeded' }).waitFor();
  seen.transport = await page.locator('#job-output').getAttribute('data-transport');
  seen.stdout = await page.locator('#job-stdout').innerText();
  seen.fields = (await page.locator('#job-fields').innerText()).replace(/\s+/g, ' ');
  if (!seen.fields.includes('Exit code 0')) fail('no exit code on the job page: ' + seen.fields);
  await page.screenshot({ path: path.join(SHOTS, 'dashboard.png'), fullPage: true });
  log('job page shows', JSON.stringify(seen.stdout));

  // --- a job followed while it runs: its first line shows before it ends
  await page.getByRole('link', { name: '← All jobs' }).click();
  await page.getByLabel('Command', { exact: true }).fill('echo live-1; sleep 4; echo live-2');
  await page.getByRole('button', { name: 'Submit job' }).click();
  const link2 = page.locator('#submitted-link', { hasNotText: id });
  await link2.waitFor();
  seen.live_job_id = (await link2.textContent()).trim();
  await link2.click();
  await page.locator('#job-stdout', { hasText: 'live-1' }).waitFor({ timeout: 30000 });
  const during = {
    state: (await page.locator('#job-state').innerText()).trim(),
    stdout: await page.locator('#job-stdout').innerText(),
  };
  seen.live_during = during;
  if (!during.state.includes('running') || during.stdout.includes('live-2')) {
    fail('the output did not come while the job ran: ' + JSON.stringify(during));
  }
  await page.locator('#job-stdout', { hasText: 'live-2' }).waitFor({ timeout: 30000 });
  await page.locator('#job-state', { hasText: 'succeeded' }).waitFor();
  seen.live_transport = await page.locator('#job-output').getAttribute('data-transport');
  seen.live_stdout = await page.locator('#job-stdout').innerText();
  log('live output streamed');

  // --- queues and workers
  await page.getByRole('link', { name: 'Queues and workers' }).click();
  await page.locator('#workers-body tr[data-worker]').first().waitFor();
  await page.locator('#queues-body tr[data-queue="default"]').waitFor();
  seen.workers = await page.locator('#workers-body tr[data-worker]').count();
  seen.queue_row = (await page.locator('#queues-body tr[data-queue="default"]').innerText()).replace(/\s+/g, ' ');
  await page.screenshot({ path: path.join(SHOTS, 'dashboard-cluster.png'), fullPage: true });
  log('workers', seen.workers, 'queue', seen.queue_row);

  // --- an API that reports queue depths has them shown
  await page.route('**/v1/queues', (r) => r.fulfill({
    status: 200, contentType: 'application/json',
    body: JSON.stringify({ queues: [{ name: 'default', depth: 7, consumers: 3 }, { name: 'batch', depth: 2, consumers: 0 }] }),
  }));
  await page.reload(); // a new page: it asks for /v1/queues again
  await page.locator('#queues-body tr[data-queue="batch"]').waitFor();
  const depth = (await page.locator('#queues-body tr[data-queue="default"] td').first().innerText()).trim();
  if (depth !== '7') fail('the depth the API reported is not shown: ' + depth);
  await page.unroute('**/v1/queues');

  // --- without the events endpoint (an older API), the job page polls
  expected.push(/\/events$/);
  await page.route('**/events', (r) => r.fulfill({
    status: 404, contentType: 'application/json',
    body: '{"error":{"code":"not_found","message":"no such path"}}',
  }));
  await page.goto(BASE + '/#/jobs/' + id);
  await page.locator('#job-stdout', { hasText: 'hello-dashboard' }).waitFor();
  await page.locator('#job-state', { hasText: 'succeeded' }).waitFor();
  seen.fallback_transport = await page.locator('#job-output').getAttribute('data-transport');
  if (seen.fallback_transport !== 'poll') fail('no polling without /events: ' + seen.fallback_transport);
  await page.unroute('**/events');

  // --- a job that does not exist says so
  expected.push(/\/v1\/jobs\/00000000-0000-7000-8000-000000000000/);
  await page.goto(BASE + '/#/jobs/00000000-0000-7000-8000-000000000000');
  await page.locator('#job-state', { hasText: 'no such job' }).waitFor();

  // --- forgetting the token leaves nothing behind
  await page.getByRole('button', { name: 'Forget token' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  if (await page.evaluate(() => sessionStorage.length)) fail('sessionStorage not empty after signing out');

  if (external.length) fail('requests outside the API: ' + external.join(' '));
  if (problems.length) fail(problems.join('\n'));
  console.log(JSON.stringify(seen));
} catch (e) {
  log('FAILED:', e.message);
  try {
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-failure.png'), fullPage: true });
    log('screenshot of the failure:', path.join(SHOTS, 'dashboard-failure.png'));
  } catch (e2) {
    /* the browser is gone */
  }
  if (problems.length) log('page problems:\n' + problems.join('\n'));
  await context.close();
  process.exit(1);
}
await context.close();
