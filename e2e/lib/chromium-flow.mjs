// A user's browser in an mcp_auth authorization: Debian's Chromium, driven
// by playwright-core, opens the authorization URL, checks and answers the
// consent page, logs in on the built-in login page and is sent back to the
// client's loopback redirect URI, where a small HTTP server of ours answers.
//
// Trust in Caddy's local CA is real, not switched off: Chromium on Linux
// takes locally added trust anchors from the NSS database in
// $HOME/.pki/nssdb. Each run gets a throwaway HOME with a fresh NSS
// database holding only the CA certificate (certutil, Debian package
// libnss3-tools), and Chromium is started with that HOME and
// ignoreHTTPSErrors: false, so a certificate the CA did not issue fails
// the navigation.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, existsSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';

const CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    '--no-first-run',
];

const STEP_TIMEOUT = 15_000;

/** Headers the authorization server's HTML pages must carry. */
export function checkPageHeaders(name, headers) {
    const got = {
        'x-frame-options': headers['x-frame-options'] ?? null,
        'content-security-policy': headers['content-security-policy'] ?? null,
        'cache-control': headers['cache-control'] ?? null,
    };
    const problems = [];
    if (got['x-frame-options'] !== 'DENY') problems.push(`X-Frame-Options ${got['x-frame-options']}`);
    if (!/(^|;)\s*frame-ancestors 'none'\s*(;|$)/.test(got['content-security-policy'] ?? '')) {
        problems.push(`Content-Security-Policy ${got['content-security-policy']}`);
    }
    if (!/(^|,)\s*no-store\s*(,|$)/.test(got['cache-control'] ?? '')) problems.push(`Cache-Control ${got['cache-control']}`);
    if (problems.length) throw new Error(`${name} page headers: ${problems.join('; ')}`);
    return got;
}

/**
 * Creates a throwaway HOME whose NSS database trusts caCertPath as a CA for
 * TLS servers, and a Chromium profile directory beside it.
 */
function trustingHome(caCertPath) {
    if (!existsSync(caCertPath)) throw new Error(`CA certificate ${caCertPath} does not exist`);
    const home = mkdtempSync(path.join(os.tmpdir(), 'mcpauth-chromium-'));
    const db = path.join(home, '.pki', 'nssdb');
    mkdirSync(db, { recursive: true });
    const certutil = (...args) => execFileSync('certutil', ['-d', `sql:${db}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
        certutil('-N', '--empty-password');
        // "C,,": a trusted CA for TLS server certificates, nothing else.
        certutil('-A', '-t', 'C,,', '-n', 'caddy-local-ca', '-i', caCertPath);
    } catch (err) {
        rmSync(home, { recursive: true, force: true });
        throw new Error(`certutil: ${err.stderr?.toString().trim() || err.message}`);
    }
    return { home, profile: path.join(home, 'profile') };
}

/**
 * Listens on the redirect URI's loopback port and resolves with the first
 * request to its path: the authorization response.
 */
async function redirectCatcher(redirectUri) {
    const u = new URL(redirectUri);
    if (u.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) {
        throw new Error(`redirect URI ${redirectUri} is not an http loopback URI`);
    }
    let deliver;
    const received = new Promise((resolve) => (deliver = resolve));
    const server = http.createServer((req, res) => {
        const got = new URL(req.url, redirectUri);
        if (got.pathname !== u.pathname) {
            res.writeHead(got.pathname === '/favicon.ico' ? 204 : 404).end();
            return;
        }
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end('<!doctype html><title>Done</title><p>Authorization finished. You can close this window.</p>');
        deliver(got);
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(Number(u.port || 80), u.hostname.replace(/^\[|\]$/g, ''), resolve);
    });
    return {
        received,
        close: () => new Promise((resolve) => {
            server.close(resolve);
            server.closeAllConnections();
        }),
    };
}

function normalize(s) {
    return s.replace(/\s+/g, ' ').trim();
}

/**
 * Runs one authorization in a fresh Chromium.
 *
 * @param {object} o
 * @param {string} o.authorizationUrl  the client's authorization request
 * @param {string} o.caCert            PEM file of the CA to trust (Caddy's local root)
 * @param {string} o.username          for the built-in login page
 * @param {string} o.password
 * @param {'approve'|'deny'} [o.decision]
 * @param {string} [o.clientName]      the consent page must show it
 * @param {string} [o.screenshot]      PNG path for the consent page
 * @returns {Promise<object>} the authorization response and what was checked
 */
export async function runAuthorization(o) {
    const authURL = new URL(o.authorizationUrl);
    const redirectUri = authURL.searchParams.get('redirect_uri');
    if (!redirectUri) throw new Error('the authorization URL has no redirect_uri');
    const decision = o.decision ?? 'approve';
    if (!['approve', 'deny'].includes(decision)) throw new Error(`decision ${decision}`);

    // What the consent page must tell the user, from the request itself.
    const expect = {
        clientName: o.clientName ?? null,
        redirectHost: new URL(redirectUri).host,
        resource: authURL.searchParams.get('resource'),
        scopes: (authURL.searchParams.get('scope') ?? '').split(' ').filter(Boolean),
    };

    const { home, profile } = trustingHome(o.caCert);
    let catcher, context;
    const out = { decision, headers: {}, consent: {}, pages: [] };
    try {
        catcher = await redirectCatcher(redirectUri);
        context = await chromium.launchPersistentContext(profile, {
            executablePath: CHROMIUM,
            headless: true,
            args: CHROMIUM_ARGS,
            ignoreHTTPSErrors: false,
            env: { ...process.env, HOME: home },
            timeout: 30_000,
        });
        const page = context.pages()[0] ?? (await context.newPage());
        page.setDefaultTimeout(STEP_TIMEOUT);
        out.console = [];
        out.failedRequests = [];
        page.on('console', (m) => {
            if (m.type() === 'error' || m.type() === 'warning') out.console.push(`${m.type()}: ${m.text()} (${m.location()?.url ?? ''})`);
        });
        page.on('response', (r) => {
            if (r.status() >= 400) out.failedRequests.push(`${r.status()} ${r.request().method()} ${r.url().split('?')[0]}`);
        });
        page.on('requestfailed', (r) => out.failedRequests.push(`failed ${r.method()} ${r.url().split('?')[0]}: ${r.failure()?.errorText}`));
        page.on('framenavigated', (f) => {
            if (f === page.mainFrame()) out.pages.push(new URL(f.url()).origin + new URL(f.url()).pathname);
        });
        try {
            // Consent.
            const consentResp = await page.goto(authURL.href, { waitUntil: 'load' });
            if (!consentResp) throw new Error('no response for the authorization URL');
            if (consentResp.status() !== 200) {
                throw new Error(`authorization URL: HTTP ${consentResp.status()}: ${normalize(await page.innerText('body'))}`);
            }
            out.headers.consent = checkPageHeaders('consent', await consentResp.allHeaders());
            const text = normalize(await page.innerText('main'));
            out.consent.text = text;
            out.consent.title = await page.title();
            const missing = [];
            if (expect.clientName && !text.includes(expect.clientName)) missing.push(`client name "${expect.clientName}"`);
            if (!text.includes(expect.redirectHost)) missing.push(`redirect host "${expect.redirectHost}"`);
            if (expect.resource && !text.includes(expect.resource)) missing.push(`resource "${expect.resource}"`);
            const listed = await page.locator('main ul li').allInnerTexts();
            out.consent.scopes = listed.map(normalize);
            for (const sc of expect.scopes) if (!out.consent.scopes.includes(sc)) missing.push(`scope "${sc}"`);
            if (missing.length) throw new Error(`consent page does not show ${missing.join(', ')}: ${text}`);
            out.consent.expected = expect;
            if (o.screenshot) {
                await page.screenshot({ path: o.screenshot, fullPage: true });
                out.screenshot = o.screenshot;
            }

            const label = decision === 'approve' ? 'Approve' : 'Deny';
            if (decision === 'approve') {
                // Approve leads to the built-in login page.
                const [loginResp] = await Promise.all([
                    page.waitForResponse((r) => r.request().isNavigationRequest() && new URL(r.url()).pathname.endsWith('/authorize/login') && r.request().method() === 'GET'),
                    page.getByRole('button', { name: label, exact: true }).click(),
                ]);
                await page.waitForLoadState('load');
                if (loginResp.status() !== 200) throw new Error(`login page: HTTP ${loginResp.status()}`);
                out.headers.login = checkPageHeaders('login', await loginResp.allHeaders());
                await page.getByLabel('Username').fill(o.username);
                await page.getByLabel('Password').fill(o.password);
                await page.getByRole('button', { name: 'Log in', exact: true }).click();
            } else {
                await page.getByRole('button', { name: label, exact: true }).click();
            }

            // The authorization response arrives at the redirect URI.
            let timer;
            const got = await Promise.race([
                catcher.received,
                new Promise((_, reject) => {
                    timer = setTimeout(() => reject(new Error('timed out waiting for the redirect to the client')), STEP_TIMEOUT);
                }),
            ]).finally(() => clearTimeout(timer));
            await page.waitForURL((u) => u.href.startsWith(redirectUri.split('?')[0]), { timeout: STEP_TIMEOUT });
            out.url = page.url();
            // The browser-binding cookie, without its value.
            out.cookies = (await context.cookies()).map(({ value, ...c }) => ({ ...c, value: value ? '(set)' : '' }));
            out.query = Object.fromEntries(got.searchParams);
            return out;
        } catch (err) {
            let where = '';
            try {
                where = ` (at ${page.url()}: ${normalize(await page.innerText('body', { timeout: 2000 })).slice(0, 500)})`;
            } catch {
                // the page is gone
            }
            err.message += where;
            throw err;
        }
    } finally {
        await context?.close().catch(() => {});
        await catcher?.close();
        rmSync(home, { recursive: true, force: true });
    }
}
