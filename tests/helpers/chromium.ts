// Debian's Chromium driven by playwright-core, for the checks a page needs a real browser for: it
// never downloads a browser (the system binary, or the check is skipped), runs headless with a
// fresh profile and nothing in the background that would go on the network, and records every
// request and every console error of the page it opens.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const CHROMIUM_SKIPPED = 'skipped: chromium is not installed (apt-get install chromium)';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  /** Opens `file` in a new tab and reports what it did. */
  open(file: string, screenshot?: string): Promise<OpenedPage>;
  close(): Promise<void>;
}

interface OpenedPage {
  page: Page;
  /** Every URL the page requested (its own file:// URL first). */
  requests: string[];
  /** Console errors, uncaught exceptions and dialogs. */
  errors: string[];
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Browser> {
  const profile = mkdtempSync(path.join(tmpdir(), 'agentgate-chromium-'));
  let context: BrowserContext;
  try {
    // A persistent context is how playwright takes a --user-data-dir: a fresh one each time.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 900 },
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  return {
    async open(file, screenshot) {
      const page = await context.newPage();
      const requests: string[] = [];
      const errors: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => errors.push(`exception: ${e.message}`));
      page.on('dialog', (d) => {
        errors.push(`dialog: ${d.message()}`);
        void d.dismiss();
      });
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
      return { page, requests, errors, close: () => page.close() };
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
