// A browser without a browser: fetch with a cookie jar, following redirects
// one at a time, that approves mcp_auth's consent page (a plain HTML form
// with the hidden fields request and csrf, posted with decision=approve)
// and passes through an upstream identity provider that needs no input,
// like oidc-provider.mjs. Enough to log in over plain HTTP.

/** Cookies by origin, with their paths; enough for one login. */
export class CookieJar {
    constructor() {
        this.cookies = []; // {origin, name, value, path}
    }
    store(url, res) {
        for (const line of res.headers.getSetCookie()) {
            const [pair, ...attrs] = line.split(';').map((s) => s.trim());
            const eq = pair.indexOf('=');
            const name = pair.slice(0, eq);
            const value = pair.slice(eq + 1);
            let path = '/';
            let expired = value === '';
            for (const a of attrs) {
                const [k, v = ''] = a.split('=');
                const key = k.toLowerCase();
                if (key === 'path') path = v || '/';
                if (key === 'max-age' && Number(v) <= 0) expired = true;
                if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
            }
            this.cookies = this.cookies.filter((c) => !(c.origin === url.origin && c.name === name && c.path === path));
            if (!expired) this.cookies.push({ origin: url.origin, name, value, path });
        }
    }
    header(url) {
        const matching = this.cookies.filter(
            (c) => c.origin === url.origin && (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)),
        );
        // Longer paths first, as browsers send them.
        matching.sort((a, b) => b.path.length - a.path.length);
        return matching.map((c) => `${c.name}=${c.value}`).join('; ');
    }
}

const decode = (s) =>
    s.replace(/&(#\d+|#x[0-9a-f]+|amp|lt|gt|quot|#39|apos);/gi, (m, e) => {
        const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e.toLowerCase()];
        if (named) return named;
        return String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    });

/** The form of a page: its action and hidden fields. */
export function parseForm(page, base) {
    const form = page.match(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i);
    if (!form) return undefined;
    const fields = new URLSearchParams();
    for (const m of form[2].matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields.set(m[1], decode(m[2]));
    return { action: new URL(decode(form[1]), base), fields };
}

/**
 * login follows authorizationUrl through the authorization server and the
 * upstream provider, approving consent, until a redirect leaves for
 * redirectUri; it returns that URL (the authorization response) and the
 * steps taken ("GET /authorize 200", ...).
 */
export async function login(authorizationUrl, redirectUri, { decision = 'approve', maxHops = 20 } = {}) {
    const jar = new CookieJar();
    const steps = [];
    let url = new URL(authorizationUrl);
    let init = { method: 'GET' };
    for (let hop = 0; hop < maxHops; hop++) {
        const headers = { ...(init.headers ?? {}) };
        const cookie = jar.header(url);
        if (cookie) headers.cookie = cookie;
        const res = await fetch(url, { ...init, headers, redirect: 'manual' });
        jar.store(url, res);
        steps.push(`${init.method} ${url.origin}${url.pathname} ${res.status}`);
        const body = await res.text();
        const location = res.headers.get('location');
        if (res.status >= 300 && res.status < 400 && location) {
            const next = new URL(location, url);
            if (next.href.startsWith(redirectUri)) return { response: next, steps };
            url = next;
            init = { method: 'GET' };
            continue;
        }
        if (res.status === 200 && body.includes('name="decision"')) {
            const form = parseForm(body, url);
            if (!form) throw new Error(`no form on the consent page ${url}`);
            form.fields.set('decision', decision);
            url = form.action;
            init = {
                method: 'POST',
                headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(authorizationUrl).origin },
                body: form.fields.toString(),
            };
            continue;
        }
        throw new Error(`${init.method} ${url}: unexpected ${res.status}: ${body.slice(0, 500)}\nsteps: ${steps.join(', ')}`);
    }
    throw new Error(`more than ${maxHops} hops from ${authorizationUrl}: ${steps.join(', ')}`);
}
