import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/*
 * Debian's chromium (apt-get install chromium; .ci/run does it), driven by
 * playwright-core: never a browser downloaded by npm. CHROMIUM_PATH names
 * another; without one the browser tests skip, saying why.
 */

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const BROWSER_MISSING = existsSync(CHROMIUM_PATH) ? undefined : `no browser at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`;

/** Where failing tests leave their screenshots. */
export const OUTPUT_DIR = path.resolve(process.env.TEST_OUTPUT_DIR ?? 'test-output', 'console');

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export interface Browser {
  readonly context: BrowserContext;
  readonly page: Page;
  close(): Promise<void>;
}

/** A fresh profile (user-data-dir) each time, so no session or cache leaks between runs. */
export async function launchBrowser(options: { locale?: string; colorScheme?: 'light' | 'dark' } = {}): Promise<Browser> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
    locale: options.locale ?? 'en-US',
    colorScheme: options.colorScheme ?? 'light',
  });
  const page = context.pages()[0] ?? await context.newPage();
  // Actions ask before they act (window.confirm): the tests say yes.
  page.on('dialog', (dialog) => { void dialog.accept(); });
  // The page's own errors, in the test's output.
  page.on('pageerror', (err) => console.log(`      page error: ${err.message}`));
  page.on('console', (message) => { if (message.type() === 'error') console.log(`      page console: ${message.text()}`); });
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Saves a screenshot of the page under OUTPUT_DIR (on failure). */
export async function screenshotOnFailure(page: Page | undefined, title: string): Promise<string | undefined> {
  if (!page) return undefined;
  mkdirSync(OUTPUT_DIR, { recursive: true });
  const file = path.join(OUTPUT_DIR, `${title.replace(/[^\w.-]+/g, '_').slice(0, 100)}.png`);
  await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
  return file;
}
