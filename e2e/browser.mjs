#!/usr/bin/env node
// One user's authorization in Debian's Chromium: opens the authorization
// URL, checks the consent page (what it shows and its security headers),
// approves or denies, logs in on the built-in login page and waits for the
// client's loopback redirect URI. Prints one JSON line: the authorization
// response's query (code, state, iss or error) and the headers checked.
// Exits non-zero on any failure.
//
// Settings, from the environment (or --name=value arguments):
//   E2E_AUTH_URL     authorization URL (required); its redirect_uri must be
//                    http://127.0.0.1:<port>/..., where this script listens
//   E2E_CA_CERT      PEM of the CA to trust: Caddy's local root.crt (required)
//   E2E_USERNAME, E2E_PASSWORD   for the login page (required to approve)
//   E2E_DECISION     approve (default) or deny
//   E2E_CLIENT_NAME  the name the consent page must show
//   E2E_SCREENSHOT   where to save a PNG of the consent page

import { runAuthorization } from './lib/chromium-flow.mjs';

const settings = { ...process.env };
for (const arg of process.argv.slice(2)) {
    const m = /^--([a-z-]+)=(.*)$/s.exec(arg);
    if (!m) {
        console.error(`browser.mjs: unexpected argument ${arg}`);
        process.exit(2);
    }
    settings['E2E_' + m[1].toUpperCase().replaceAll('-', '_')] = m[2];
}

function required(name) {
    if (!settings[name]) {
        console.error(`browser.mjs: ${name} is required`);
        process.exit(2);
    }
    return settings[name];
}

try {
    const decision = settings.E2E_DECISION || 'approve';
    const result = await runAuthorization({
        authorizationUrl: required('E2E_AUTH_URL'),
        caCert: required('E2E_CA_CERT'),
        username: decision === 'approve' ? required('E2E_USERNAME') : settings.E2E_USERNAME,
        password: decision === 'approve' ? required('E2E_PASSWORD') : settings.E2E_PASSWORD,
        decision,
        clientName: settings.E2E_CLIENT_NAME || undefined,
        screenshot: settings.E2E_SCREENSHOT || undefined,
    });
    process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
    console.error(`browser.mjs: ${err.stack || err}`);
    process.exit(1);
}
