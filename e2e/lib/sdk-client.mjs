// What the TypeScript MCP SDK clients of e2e/ts-client.mjs and
// conformance/ts-flow.mjs share: an in-memory OAuth client provider, a
// fetch that records every request, and small helpers. It imports nothing
// but Node's own modules, so both packages can use it.

import { createHash, randomBytes } from 'node:crypto';

export function required(name) {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is required`);
    return v;
}

export function check(cond, message) {
    if (!cond) throw new Error(message);
}

// fingerprint identifies a secret in the output without revealing it.
export const fingerprint = (s) => (s ? createHash('sha256').update(s).digest('hex').slice(0, 12) : null);

// tracingFetch is fetch that appends "METHOD /path status" of every
// request to requests.
export function tracingFetch(requests) {
    return async (input, init) => {
        const res = await fetch(input, init);
        const u = new URL(input instanceof Request ? input.url : String(input));
        requests.push(`${init?.method ?? (input instanceof Request ? input.method : 'GET')} ${u.pathname} ${res.status}`);
        return res;
    };
}

/** An OAuthClientProvider that keeps everything in memory: a public client
 * with the refresh_token grant, registered dynamically. */
export class MemoryProvider {
    constructor(clientName, redirectUrl, onRedirect) {
        this.clientName = clientName;
        this.redirectUrl = redirectUrl;
        this.onRedirect = onRedirect;
        this.saved = []; // every token set saved, in order
        this.invalidated = [];
    }
    get clientMetadata() {
        return {
            client_name: this.clientName,
            redirect_uris: [this.redirectUrl],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'none',
        };
    }
    state() {
        this.lastState = randomBytes(16).toString('base64url');
        return this.lastState;
    }
    clientInformation() {
        return this.client;
    }
    saveClientInformation(info) {
        this.client = info;
    }
    tokens() {
        return this.current;
    }
    saveTokens(tokens) {
        this.current = tokens;
        this.saved.push(tokens);
    }
    async redirectToAuthorization(url) {
        await this.onRedirect(url);
    }
    saveCodeVerifier(v) {
        this.verifier = v;
    }
    codeVerifier() {
        if (!this.verifier) throw new Error('no code verifier saved');
        return this.verifier;
    }
    discoveryState() {
        return this.discovery;
    }
    saveDiscoveryState(state) {
        this.discovery = state;
    }
    invalidateCredentials(scope) {
        this.invalidated.push(scope);
        if (scope === 'all' || scope === 'client') this.client = undefined;
        if (scope === 'all' || scope === 'tokens') this.current = undefined;
        if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
        if (scope === 'all' || scope === 'discovery') this.discovery = undefined;
    }
}
