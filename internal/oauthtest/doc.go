// Package oauthtest drives an OAuth 2.1 authorization server over HTTP the
// way MCP clients do, for tests: PKCE pairs, requests and form posts,
// client registration, token requests, a look inside the JWTs issued, and
// MCP requests to the protected resource with an access token; and a
// settable clock for tests of expiry.
//
// It imports neither Caddy nor the plugin's root package, so the tests of
// any package can use it, against an httptest server as well as a real
// Caddy.
package oauthtest
