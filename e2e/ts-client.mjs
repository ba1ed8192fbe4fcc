#!/usr/bin/env node
// The TypeScript MCP SDK as an MCP client of a site protected by mcp_auth,
// following the SDK's OAuth client flow (see its simpleOAuthClient example):
// connect → 401 → discovery, dynamic client registration and
// redirectToAuthorization, where Debian's Chromium logs the user in
// (lib/chromium-flow.mjs) → transport.finishAuth(code) → connect again.
// Then it lists and calls tools, and makes the SDK refresh the tokens twice:
// once on its own, after the access token it holds stops working, and once
// through auth(), as a client does before its access token expires.
// Prints one JSON line with the results; exits non-zero on any failure.
//
// Node must trust Caddy's local CA: run with NODE_EXTRA_CA_CERTS=<root.crt>.
//
// Settings, from the environment:
//   E2E_SERVER_URL     the MCP endpoint, e.g. https://localhost:8443/mcp (required)
//   E2E_CA_CERT        PEM of the CA for Chromium to trust (required)
//   E2E_REDIRECT_PORT  loopback port of the redirect URI (required)
//   E2E_USERNAME, E2E_PASSWORD   for the login page (required)
//   E2E_SCREENSHOT     where to save a PNG of the consent page

import { check, fingerprint, MemoryProvider, required, tracingFetch as recordingFetch } from './lib/sdk-client.mjs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { runAuthorization } from './lib/chromium-flow.mjs';




const CLIENT_NAME = 'TypeScript SDK e2e client';


async function main() {
    const serverUrl = new URL(required('E2E_SERVER_URL'));
    const caCert = required('E2E_CA_CERT');
    const redirectUrl = `http://127.0.0.1:${required('E2E_REDIRECT_PORT')}/callback`;
    const username = required('E2E_USERNAME');
    const password = required('E2E_PASSWORD');
    check(process.env.NODE_EXTRA_CA_CERTS, 'NODE_EXTRA_CA_CERTS must name the CA certificate, or Node will not trust the site');

    const out = { redirectUrl, requests: [] };
    const tracingFetch = recordingFetch(out.requests);
    let authorizationResponse;
    let browserRuns = 0;
    const provider = new MemoryProvider(CLIENT_NAME, redirectUrl, async (url) => {
        browserRuns++;
        out.authorizationRequest = Object.fromEntries(
            [...url.searchParams].filter(([k]) => !['state', 'code_challenge'].includes(k)),
        );
        const r = await runAuthorization({
            authorizationUrl: url.href,
            caCert,
            username,
            password,
            clientName: CLIENT_NAME,
            screenshot: process.env.E2E_SCREENSHOT || undefined,
        });
        authorizationResponse = r.query;
        out.consentHeaders = r.headers.consent;
    });

    // 1. Connecting without tokens starts the authorization.
    const transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider, fetch: tracingFetch });
    const first = new Client({ name: 'ts-e2e', version: '0.0.0' });
    let err;
    try {
        await first.connect(transport);
    } catch (e) {
        err = e;
    }
    check(err instanceof UnauthorizedError, `first connect: expected UnauthorizedError, got ${err}`);
    check(browserRuns === 1 && authorizationResponse, 'the SDK did not send the user to authorize');
    const q = authorizationResponse;
    check(!q.error, `authorization failed: ${q.error} ${q.error_description ?? ''}`);
    check(q.code, 'no code in the authorization response');
    check(q.state === provider.lastState, `state ${q.state} is not the one sent (${provider.lastState})`);
    const issuer = provider.discoveryState()?.authorizationServerMetadata?.issuer;
    check(q.iss && q.iss === issuer, `iss ${q.iss} is not the issuer ${issuer} (RFC 9207)`);
    out.authorizationResponse = { code: fingerprint(q.code), state: 'matches', iss: q.iss };
    out.clientId = provider.clientInformation()?.client_id;

    await transport.finishAuth(q.code);
    const initial = provider.tokens();
    check(initial?.access_token && initial.refresh_token, 'finishAuth saved no access and refresh token');
    out.tokens = {
        token_type: initial.token_type,
        expires_in: initial.expires_in,
        scope: initial.scope,
        access: fingerprint(initial.access_token),
        refresh: fingerprint(initial.refresh_token),
    };

    // 2. Connect again, now authorized.
    const client = new Client({ name: 'ts-e2e', version: '0.0.0' });
    const authed = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider, fetch: tracingFetch });
    await client.connect(authed);
    out.server = client.getServerVersion();
    const { tools } = await client.listTools();
    out.tools = tools.map((t) => t.name).sort();
    for (const want of ['whoami', 'echo', 'add']) check(out.tools.includes(want), `tool ${want} is not listed: ${out.tools}`);

    const callOK = async (name, args) => {
        const res = await client.callTool({ name, arguments: args });
        check(!res.isError, `${name}: ${JSON.stringify(res.content)}`);
        return res;
    };
    out.whoami = (await callOK('whoami', {})).structuredContent;
    const add = await callOK('add', { a: 2, b: 40 });
    out.add = add.structuredContent?.sum;
    check(out.add === 42, `add 2 40 = ${JSON.stringify(add)}`);

    // 3. The access token stops working (as if revoked or expired early):
    // the next call gets 401, and the SDK refreshes on its own and retries.
    const savedBefore = provider.saved.length;
    provider.current = { ...provider.current, access_token: 'not-a-valid-token' };
    const whoamiAfterSDKRefresh = (await callOK('whoami', {})).structuredContent;
    const afterSDK = provider.tokens();
    check(provider.saved.length === savedBefore + 1, 'the SDK did not save refreshed tokens after a 401');
    check(browserRuns === 1, 'the SDK sent the user to authorize again instead of refreshing');
    check(afterSDK.access_token !== 'not-a-valid-token' && afterSDK.access_token !== initial.access_token, 'no new access token');
    check(afterSDK.refresh_token && afterSDK.refresh_token !== initial.refresh_token, 'the refresh token did not rotate');

    // 4. A refresh through auth(), as a client does before the access token
    // expires; the tool call that follows uses the new access token.
    const result = await auth(provider, { serverUrl, fetchFn: tracingFetch });
    check(result === 'AUTHORIZED', `auth() returned ${result}`);
    const afterAuth = provider.tokens();
    check(afterAuth.access_token !== afterSDK.access_token, 'auth() did not get a new access token');
    check(afterAuth.refresh_token && afterAuth.refresh_token !== afterSDK.refresh_token, 'the refresh token did not rotate on auth()');
    const whoamiAfterAuthRefresh = (await callOK('whoami', {})).structuredContent;
    out.add2 = (await callOK('add', { a: 2, b: 40 })).structuredContent?.sum;
    check(browserRuns === 1, 'the user was sent to authorize again');

    out.refresh = {
        refreshed: true,
        sdkOn401: {
            access: fingerprint(afterSDK.access_token),
            refresh: fingerprint(afterSDK.refresh_token),
            whoami: whoamiAfterSDKRefresh,
        },
        authFunction: {
            access: fingerprint(afterAuth.access_token),
            refresh: fingerprint(afterAuth.refresh_token),
            whoami: whoamiAfterAuthRefresh,
        },
        tokensSaved: provider.saved.length,
        browserRuns,
        invalidated: provider.invalidated,
    };
    await client.close();
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(
    () => process.exit(0),
    (err) => {
        console.error(`ts-client.mjs: ${err.stack || err}`);
        process.exit(1);
    },
);
