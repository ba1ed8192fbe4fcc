#!/usr/bin/env node
// The TypeScript MCP SDK against mcp_auth with server-everything behind
// reverse_proxy and a real OpenID Provider upstream (conformance_test.go).
// The SDK discovers, registers (DCR) and sends the user to authorize; the
// user is user-agent.mjs, which approves consent over plain HTTP while the
// upstream provider logs the user in by itself. Then the SDK lists and calls
// tools, refreshes the tokens, and the tokens are revoked at /revoke:
//   1. a revoked access token gets 401 at the MCP endpoint, and the SDK
//      recovers with its refresh token;
//   2. a revoked refresh token no longer refreshes, and the access token
//      issued from it gets 401 too (RFC 7009 section 2.1).
// Prints one JSON line with the results; exits non-zero on any failure.
//
// Node must trust Caddy's CA: run with NODE_EXTRA_CA_CERTS=<root.crt>.
//
// Settings, from the environment:
//   FLOW_SERVER_URL     the MCP endpoint, e.g. https://localhost:8443/mcp (required)
//   FLOW_REDIRECT_PORT  loopback port of the client's redirect URI (required;
//                       nothing listens there: the user agent stops at it)

import { check, fingerprint, MemoryProvider, required, tracingFetch as recordingFetch } from '../e2e/lib/sdk-client.mjs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, refreshAuthorization, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { login } from './user-agent.mjs';





async function main() {
    const serverUrl = new URL(required('FLOW_SERVER_URL'));
    const redirectUrl = `http://127.0.0.1:${required('FLOW_REDIRECT_PORT')}/callback`;
    check(process.env.NODE_EXTRA_CA_CERTS, 'NODE_EXTRA_CA_CERTS must name the CA certificate, or Node will not trust the site');

    const out = { node: process.version, requests: [] };
    const tracingFetch = recordingFetch(out.requests);

    // 1. Login: the first connect gets 401, and the SDK sends the user to
    // authorize; the user agent brings back the authorization response.
    let authorizationResponse;
    let logins = 0;
    const provider = new MemoryProvider('TypeScript SDK conformance flow', redirectUrl, async (url) => {
        logins++;
        out.authorizationRequest = Object.fromEntries(
            [...url.searchParams].filter(([k]) => !['state', 'code_challenge'].includes(k)),
        );
        const { response, steps } = await login(url.href, redirectUrl);
        out.loginSteps = steps;
        authorizationResponse = Object.fromEntries(response.searchParams);
    });
    const first = new Client({ name: 'conformance-ts-flow', version: '0.0.0' });
    let err;
    try {
        await first.connect(new StreamableHTTPClientTransport(serverUrl, { authProvider: provider, fetch: tracingFetch }));
    } catch (e) {
        err = e;
    }
    check(err instanceof UnauthorizedError, `first connect: expected UnauthorizedError, got ${err?.stack ?? err}`);
    check(logins === 1 && authorizationResponse, 'the SDK did not send the user to authorize');
    const q = authorizationResponse;
    check(!q.error, `authorization failed: ${q.error} ${q.error_description ?? ''}`);
    check(q.code, 'no code in the authorization response');
    check(q.state === provider.lastState, `state ${q.state} is not the one sent`);
    const metadata = provider.discoveryState()?.authorizationServerMetadata;
    check(q.iss && q.iss === metadata?.issuer, `iss ${q.iss} is not the issuer ${metadata?.issuer} (RFC 9207)`);
    out.clientId = provider.clientInformation()?.client_id;

    const transport0 = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider, fetch: tracingFetch });
    await transport0.finishAuth(q.code);
    const initial = provider.tokens();
    check(initial?.access_token && initial.refresh_token, 'finishAuth saved no access and refresh token');
    out.tokens = { token_type: initial.token_type, expires_in: initial.expires_in, scope: initial.scope };

    // 2. Tools of server-everything, through mcp_auth and reverse_proxy.
    const client = new Client({ name: 'conformance-ts-flow', version: '0.0.0' });
    await client.connect(new StreamableHTTPClientTransport(serverUrl, { authProvider: provider, fetch: tracingFetch }));
    out.server = client.getServerVersion();
    const { tools } = await client.listTools();
    out.tools = tools.map((t) => t.name).sort();
    for (const want of ['echo', 'get-sum']) check(out.tools.includes(want), `tool ${want} is not listed: ${out.tools}`);
    const text = async (name, args) => {
        const res = await client.callTool({ name, arguments: args });
        check(!res.isError, `${name}: ${JSON.stringify(res.content)}`);
        return res.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
    };
    out.echo = await text('echo', { message: 'hello through mcp_auth' });
    check(out.echo === 'Echo: hello through mcp_auth', `echo: ${out.echo}`);
    out.sum = await text('get-sum', { a: 2, b: 40 });
    check(/\b42\b/.test(out.sum), `get-sum 2 40: ${out.sum}`);

    // 3. Refresh, as a client does before its access token expires.
    const savedBefore = provider.saved.length;
    const result = await auth(provider, { serverUrl, fetchFn: tracingFetch });
    check(result === 'AUTHORIZED', `auth() with a refresh token returned ${result}`);
    const refreshed = provider.tokens();
    check(provider.saved.length === savedBefore + 1, 'auth() saved no refreshed tokens');
    check(logins === 1, 'auth() sent the user to authorize again instead of refreshing');
    check(refreshed.access_token !== initial.access_token, 'refresh returned the same access token');
    check(refreshed.refresh_token && refreshed.refresh_token !== initial.refresh_token, 'the refresh token was not rotated');
    out.refresh = { rotated: true, scope: refreshed.scope };
    out.echoAfterRefresh = await text('echo', { message: 'after refresh' });

    // 4. Revocation (RFC 7009) by the public client.
    const revoke = async (token, hint) => {
        const res = await tracingFetch(metadata.revocation_endpoint, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ token, token_type_hint: hint, client_id: out.clientId }).toString(),
        });
        check(res.status === 200, `revoking the ${hint}: ${res.status} ${await res.text()}`);
    };
    // mcpStatus is the status of an initialize request with token.
    const mcpStatus = async (token) => {
        const res = await tracingFetch(serverUrl, {
            method: 'POST',
            headers: {
                authorization: `Bearer ${token}`,
                'content-type': 'application/json',
                accept: 'application/json, text/event-stream',
            },
            body: JSON.stringify({
                jsonrpc: '2.0',
                id: 1,
                method: 'initialize',
                params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'revocation-check', version: '0' } },
            }),
        });
        await res.body?.cancel();
        return { status: res.status, challenge: res.headers.get('www-authenticate') };
    };
    check(metadata?.revocation_endpoint, 'the metadata has no revocation_endpoint');
    const live = await mcpStatus(refreshed.access_token);
    check(live.status === 200, `the access token before revocation: ${live.status}`);

    // 4a. Access token: denied at once; the SDK recovers by refreshing.
    await revoke(refreshed.access_token, 'access_token');
    const revokedAccess = await mcpStatus(refreshed.access_token);
    check(revokedAccess.status === 401, `a revoked access token got ${revokedAccess.status}, want 401`);
    out.revokedAccessToken = revokedAccess;
    const savedBeforeRecovery = provider.saved.length;
    out.echoAfterAccessRevocation = await text('echo', { message: 'after revocation' });
    check(provider.saved.length === savedBeforeRecovery + 1, 'the SDK did not refresh after its access token was revoked');
    check(logins === 1, 'the SDK sent the user to authorize again instead of refreshing');

    // 4b. Refresh token: the grant ends, with the access tokens issued from it.
    const last = provider.tokens();
    await revoke(last.refresh_token, 'refresh_token');
    const familyAccess = await mcpStatus(last.access_token);
    check(familyAccess.status === 401, `the access token of a revoked grant got ${familyAccess.status}, want 401`);
    out.revokedGrantAccessToken = familyAccess;
    let refreshErr;
    try {
        await refreshAuthorization(provider.discoveryState().authorizationServerUrl, {
            metadata,
            clientInformation: provider.clientInformation(),
            refreshToken: last.refresh_token,
            resource: new URL(provider.discoveryState().resourceMetadata.resource),
            fetchFn: tracingFetch,
        });
    } catch (e) {
        refreshErr = e;
    }
    check(refreshErr, 'a revoked refresh token still refreshed');
    out.revokedRefreshToken = { error: refreshErr.errorCode ?? refreshErr.constructor.name, message: refreshErr.message };
    check(out.revokedRefreshToken.error === 'invalid_grant', `refreshing with a revoked refresh token: ${refreshErr}`);

    await client.close();
    out.fingerprints = { initial: fingerprint(initial.access_token), refreshed: fingerprint(refreshed.access_token) };
    console.log(JSON.stringify(out));
}

main().then(
    () => process.exit(0),
    (err) => {
        console.error(err?.stack ?? String(err));
        process.exit(1);
    },
);
