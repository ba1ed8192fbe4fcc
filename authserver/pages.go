package authserver

import (
	"bytes"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"go.uber.org/zap"
)

// The authorization server's own pages: consent, the built-in login, and
// errors that must not redirect. They load nothing from anywhere, cannot be
// framed (clickjacking, OAuth 2.1 section 7.11) and are never cached.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style nonce="{{.Nonce}}">
body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1d2125;margin:0;display:flex;justify-content:center}
main{background:#fff;max-width:30rem;margin:3rem 1rem;padding:2rem;border-radius:12px;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem;margin-top:0}.host{font-weight:600;word-break:break-all}
.muted{color:#5e6c84;font-size:.9rem}.warn{color:#ae2e24}ul{padding-left:1.2rem}
label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}
.buttons{display:flex;gap:.8rem;margin-top:1.5rem}button{flex:1;padding:.6rem;font-size:1rem;border-radius:6px;border:1px solid #8590a2;background:#fff;cursor:pointer}
button.primary{background:#0c66e4;border-color:#0c66e4;color:#fff}
</style></head><body><main>{{end}}

{{define "consent"}}{{template "head" .}}
<h1>Allow {{.ClientName}} to use {{.ResourceHost}}?</h1>
<p>{{if .Verified}}This client is identified by its metadata document at <span class="host">{{.ClientHost}}</span>.{{else}}<span class="warn">This client registered itself and is not verified.</span>{{end}}</p>
<p>After you approve and log in, you will be sent back to <span class="host">{{.RedirectHost}}</span>.
Only continue if you started this from an app you trust.</p>
{{if .Loopback}}<p class="warn">That address is on this device (localhost): any program running here can claim to be this app. Approve only if you just started this from it yourself.</p>{{end}}
<p>It asks to access <span class="host">{{.Resource}}</span>{{if .Scopes}} with these permissions:{{end}}</p>
{{if .Scopes}}<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.Request}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<div class="buttons">
<button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" name="decision" value="approve" class="primary">Approve</button>
</div></form>
<p class="muted">Client ID: {{.ClientID}}</p>
</main></body></html>{{end}}

{{define "login"}}{{template "head" .}}
<h1>Log in to {{.ResourceHost}}</h1>
{{if .Failed}}<p class="warn">Wrong username or password.</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="state" value="{{.State}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="username">Username</label>
<input type="text" id="username" name="username" autocomplete="username" value="{{.Username}}" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<div class="buttons"><button type="submit" class="primary">Log in</button></div>
</form>
</main></body></html>{{end}}

{{define "wait"}}{{template "head" .}}
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
<p>Try again in {{.Wait}}.</p>
</main></body></html>{{end}}

{{define "error"}}{{template "head" .}}
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
<p class="muted">Return to the app you came from and try again.</p>
</main></body></html>{{end}}
`))

// renderPage writes one of the pages with the headers every page gets.
func renderPage(w http.ResponseWriter, status int, name string, data map[string]any) {
	nonce := randomToken()
	data["Nonce"] = nonce
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// waitPage answers status (429, or 503 when the server itself is busy)
// with a page saying how long to wait, and the same in Retry-After.
func (s *Site) waitPage(w http.ResponseWriter, status int, wait time.Duration, message string) {
	w.Header().Set("Retry-After", oauth.RetryAfter(wait))
	renderPage(w, status, "wait", map[string]any{"Title": "Please wait", "Message": message, "Wait": humanWait(wait)})
}

// humanWait says how long wait is, rounded up to a whole second or minute.
func humanWait(wait time.Duration) string {
	secs := max(int((wait+time.Second-1)/time.Second), 1)
	switch {
	case secs == 1:
		return "1 second"
	case secs < 120:
		return strconv.Itoa(secs) + " seconds"
	default:
		return strconv.Itoa((secs+59)/60) + " minutes"
	}
}

// errorPage answers an authorization request that cannot be sent back to
// the client, because the client or its redirect URI is not trusted.
func (s *Site) errorPage(w http.ResponseWriter, status int, message string) {
	renderPage(w, status, "error", map[string]any{"Title": "Authorization failed", "Message": message})
}

func (s *Site) serverError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if s.AS.Logger != nil {
		s.AS.Logger.Error(what, zap.Error(err))
	}
	if errors.Is(err, storage.ErrNotFound) {
		s.errorPage(w, http.StatusBadRequest, "This request has expired. Start again from the app.")
		return
	}
	s.errorPage(w, http.StatusServiceUnavailable, "The server could not complete this step. Try again.")
}
