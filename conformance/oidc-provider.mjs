#!/usr/bin/env node
// A real OpenID Provider (npm oidc-provider) on loopback, the upstream
// identity provider of mcp_auth in conformance_test.go. It has one static
// confidential client, mcp_auth itself, and logs in one fixed user without
// asking anyone: its interaction route finishes the login and the consent
// prompts as soon as the browser reaches it, so the upstream leg of a login
// needs no human.
//
// Settings, from the environment:
//   OIDC_PORT           loopback port to listen on (required)
//   OIDC_CLIENT_ID      mcp_auth's client id (required)
//   OIDC_CLIENT_SECRET  its secret (required)
//   OIDC_REDIRECT_URI   its redirect URI, <mcp_auth issuer>/authorize/callback (required)
//   OIDC_USER           the user's sub and preferred_username (default "carol")
//
// Prints one JSON line {"issuer": ...} when it accepts connections.

import http from 'node:http';
import Provider from 'oidc-provider';

function required(name) {
    const v = process.env[name];
    if (!v) {
        console.error(`${name} is required`);
        process.exit(2);
    }
    return v;
}

const port = Number(required('OIDC_PORT'));
const clientId = required('OIDC_CLIENT_ID');
const clientSecret = required('OIDC_CLIENT_SECRET');
const redirectUri = required('OIDC_REDIRECT_URI');
const user = process.env.OIDC_USER || 'carol';
const issuer = `http://127.0.0.1:${port}`;

const accounts = {
    [user]: {
        sub: user,
        preferred_username: user,
        name: `${user[0].toUpperCase()}${user.slice(1)} Conformance`,
        email: `${user}@example.com`,
        email_verified: true,
    },
};

const provider = new Provider(issuer, {
    clients: [
        {
            client_id: clientId,
            client_secret: clientSecret,
            redirect_uris: [redirectUri],
            grant_types: ['authorization_code'],
            response_types: ['code'],
            token_endpoint_auth_method: 'client_secret_basic',
        },
    ],
    // Every client, public or confidential, must use PKCE (mcp_auth sends S256).
    pkce: { required: () => true },
    claims: {
        openid: ['sub'],
        email: ['email', 'email_verified'],
        profile: ['name', 'preferred_username'],
    },
    features: {
        devInteractions: { enabled: false },
    },
    interactions: {
        url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    async findAccount(ctx, sub) {
        const account = accounts[sub];
        if (!account) return undefined;
        return {
            accountId: sub,
            async claims() {
                return { ...account };
            },
        };
    },
    // The default development cookie keys are fine for a throwaway provider.
    cookies: { keys: ['conformance-only-cookie-key'] },
});
provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));

// autoInteraction finishes the pending interaction: the login prompt as the
// fixed user, the consent prompt by granting whatever is missing.
async function autoInteraction(req, res) {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session, grantId } = details;
    let result;
    switch (prompt.name) {
        case 'login':
            result = { login: { accountId: user } };
            break;
        case 'consent': {
            const grant = grantId
                ? await provider.Grant.find(grantId)
                : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
            const d = prompt.details;
            if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
            if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
            for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
                grant.addResourceScope(indicator, scopes.join(' '));
            }
            result = { consent: { grantId: await grant.save() } };
            break;
        }
        default:
            throw new Error(`unexpected prompt ${prompt.name}`);
    }
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url.startsWith('/interaction/')) {
        autoInteraction(req, res).catch((err) => {
            console.error('interaction failed:', err);
            if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
            res.end(`interaction failed: ${err.message}`);
        });
        return;
    }
    callback(req, res);
});
server.listen(port, '127.0.0.1', () => {
    console.log(JSON.stringify({ issuer }));
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
