#!/usr/bin/env node
// panva's oauth4webapi, an independent RFC 9449 implementation, as a DPoP
// client of a site protected by mcp_auth: discovery, dynamic client
// registration, the authorization code flow with PKCE and dpop_jkt, where
// Debian's Chromium logs the user in (lib/chromium-flow.mjs), the token
// request with a DPoP proof, MCP calls with DPoP-bound tokens, a refresh,
// and the same token tried by a client without the key. Server nonces are
// handled as the library does: a use_dpop_nonce answer is retried once with
// the nonce the DPoP handle picked up. Prints one JSON line with what it
// saw; exits non-zero on any failure.
//
// Node must trust Caddy's local CA: run with NODE_EXTRA_CA_CERTS=<root.crt>.
//
// Settings, from the environment:
//   E2E_SERVER_URL     the MCP endpoint, e.g. https://localhost:8443/mcp (required)
//   E2E_CA_CERT        PEM of the CA for Chromium to trust (required)
//   E2E_REDIRECT_PORT  loopback port of the redirect URI (required)
//   E2E_USERNAME, E2E_PASSWORD   for the login page (required)

import * as oauth from 'oauth4webapi';
import { check, required } from './lib/sdk-client.mjs';
import { runAuthorization } from './lib/chromium-flow.mjs';

const CLIENT_NAME = 'oauth4webapi DPoP e2e client';

async function main() {
    const serverUrl = new URL(required('E2E_SERVER_URL'));
    const caCert = required('E2E_CA_CERT');
    const redirectUri = `http://127.0.0.1:${required('E2E_REDIRECT_PORT')}/callback`;
    check(process.env.NODE_EXTRA_CA_CERTS, 'NODE_EXTRA_CA_CERTS must name the CA certificate, or Node will not trust the site');

    const out = { requests: [], nonceRetries: 0 };
    const options = {
        [oauth.customFetch]: async (url, init) => {
            const res = await fetch(url, init);
            const dpopScheme = /^dpop /i.test(new Headers(init?.headers).get('authorization') ?? '');
            out.requests.push(`${init?.method ?? 'GET'} ${new URL(url).pathname} ${res.status}${dpopScheme ? ' DPoP' : ''}`);
            return res;
        },
    };
    // Retries once when told to use a nonce, as the library's docs show.
    const withNonce = async (request) => {
        try {
            return await request();
        } catch (err) {
            if (!oauth.isDPoPNonceError(err)) throw err;
            out.nonceRetries++;
            return await request();
        }
    };

    // Discovery, from the protected resource's metadata.
    const prm = await (await fetch(new URL('/.well-known/oauth-protected-resource' + serverUrl.pathname, serverUrl))).json();
    out.resourceMetadata = { dpop_signing_alg_values_supported: prm.dpop_signing_alg_values_supported };
    const issuer = new URL(prm.authorization_servers[0]);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...options, algorithm: 'oauth2' }));
    check(as.dpop_signing_alg_values_supported?.includes('ES256'), 'the server does not list ES256 for DPoP');

    const registered = await oauth.processDynamicClientRegistrationResponse(await oauth.dynamicClientRegistrationRequest(as, {
        client_name: CLIENT_NAME,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
    }, options));
    const client = { client_id: registered.client_id, token_endpoint_auth_method: 'none' };

    const keyPair = await oauth.generateKeyPair('ES256');
    const dpop = oauth.DPoP(client, keyPair);
    const jkt = await dpop.calculateThumbprint();

    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const authorizationUrl = new URL(as.authorization_endpoint);
    for (const [k, v] of Object.entries({
        client_id: client.client_id, redirect_uri: redirectUri, response_type: 'code', state,
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
        resource: serverUrl.href, scope: prm.scopes_supported.join(' '), dpop_jkt: jkt,
    })) authorizationUrl.searchParams.set(k, v);
    const login = await runAuthorization({
        authorizationUrl: authorizationUrl.href, caCert, clientName: CLIENT_NAME,
        username: required('E2E_USERNAME'), password: required('E2E_PASSWORD'),
    });
    const callback = new URL(redirectUri);
    for (const [k, v] of Object.entries(login.query)) callback.searchParams.set(k, v);
    const params = oauth.validateAuthResponse(as, client, callback, state);

    const tokens = await withNonce(async () => oauth.processAuthorizationCodeResponse(as, client,
        await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri, verifier,
            { ...options, DPoP: dpop, additionalParameters: { resource: serverUrl.href } })));
    out.tokenType = tokens.token_type;
    out.jkt = jkt;

    // MCP over Streamable HTTP with the bound token: initialize, then a
    // tools/call in the session. Answers come as server-sent events.
    const mcp = async (accessToken, handle, message, sessionId) => {
        const headers = new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
        if (sessionId) headers.set('mcp-session-id', sessionId);
        const res = await withNonce(async () => oauth.protectedResourceRequest(accessToken, 'POST', serverUrl, headers,
            JSON.stringify(message), { ...options, DPoP: handle }));
        const text = await res.text();
        const data = text.split('\n').find((l) => l.startsWith('data: '));
        return { status: res.status, session: res.headers.get('mcp-session-id'), body: data ? JSON.parse(data.slice(6)) : text ? JSON.parse(text) : null };
    };
    const session = async (accessToken, handle) => {
        const init = await mcp(accessToken, handle, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'dpop-e2e', version: '0' } } });
        check(init.status === 200 && init.session, `initialize: ${init.status} ${JSON.stringify(init.body)}`);
        await mcp(accessToken, handle, { jsonrpc: '2.0', method: 'notifications/initialized' }, init.session);
        const call = await mcp(accessToken, handle, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } }, init.session);
        check(call.status === 200, `tools/call: ${call.status}`);
        return call.body.result.structuredContent;
    };
    out.whoami = await session(tokens.access_token, dpop);

    const refreshed = await withNonce(async () => oauth.processRefreshTokenResponse(as, client,
        await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token, { ...options, DPoP: dpop })));
    out.refreshedTokenType = refreshed.token_type;
    out.whoamiAfterRefresh = await session(refreshed.access_token, dpop);

    // The token copied to a client that has another key, or none.
    const thief = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
    try {
        await session(refreshed.access_token, thief);
        out.copiedWithOtherKey = 'accepted';
    } catch (err) {
        out.copiedWithOtherKey = err instanceof oauth.WWWAuthenticateChallengeError ? err.cause.map((c) => `${c.scheme} ${c.parameters.error}`).join(', ') : String(err);
    }
    const asBearer = await fetch(serverUrl, {
        method: 'POST', body: '{}',
        headers: { authorization: `Bearer ${refreshed.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    });
    out.copiedAsBearer = asBearer.status;
    console.log(JSON.stringify(out));
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
