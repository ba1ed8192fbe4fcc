package authserver

import (
	"context"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// Endpoint paths, relative to the issuer.
const (
	pathJWKS       = "/jwks"
	pathRegister   = "/register"
	pathAuthorize  = "/authorize"
	pathConsent    = "/authorize/consent"
	pathLogin      = "/authorize/login"
	pathCallback   = "/authorize/callback"
	pathToken      = "/token"
	pathRevoke     = "/revoke"
	pathIntrospect = "/introspect"
	pathUserinfo   = "/userinfo"
)

// route is one endpoint: its path on the site, the name it is counted
// under and its handler.
type route struct {
	path string
	// name comes from a fixed set and never from the request, so that
	// metrics labelled with it stay bounded whatever clients request.
	name    string
	handler http.Handler
}

// newRoutes builds every endpoint of the server from cfg, each with the
// dependencies it uses, and lists it with its path.
func newRoutes(cfg *Config, issuerPath string, machines map[string]*machineClient) []route {
	log := &events{logger: cfg.Logger, audit: cfg.Audit, observer: cfg.Observer}
	stores := cfg.State
	resources := &resourceSet{origin: originOf(cfg.Issuer), list: cfg.Resources, stepUp: cfg.StepUpScopes}
	src := sources{clientIP: cfg.ClientIP, ipv4Prefix: cfg.SourceIPv4Prefix}
	browser := browserCookie{name: cookieName(cfg.Issuer), secure: strings.HasPrefix(cfg.Issuer, "https://")}
	directory := &clientDirectory{clients: stores.Clients, metadata: cfg.Metadata, machines: machines}
	rules := &policy{upstream: cfg.UpstreamIdentity, allow: cfg.Allow, grants: cfg.ScopeGrants}
	for _, idp := range cfg.EnterpriseIdPs {
		rules.enterprise = append(rules.enterprise, idp.Upstream())
	}
	auth := &clientAuthenticator{
		issuer: cfg.Issuer, directory: directory, assertionOptional: cfg.AssertionOptional,
		secretFailures: cfg.SecretFailureLimit, sources: src, keys: cfg.Keys, usedAssertions: stores.Clients, log: log,
	}
	mint := &minter{
		issuer: cfg.Issuer, ring: cfg.Ring, revocations: stores.Revocations, grants: stores.Grants,
		accessLifetime: cfg.AccessTokenLifetime, refreshLifetime: cfg.RefreshTokenLifetime, refreshIdle: cfg.RefreshTokenIdle,
		now: time.Now,
	}
	lookup := &tokenLookup{verifier: cfg.Verifier, resources: cfg.Resources, revocations: stores.Revocations, grants: stores.Grants}
	consent := &consentMemory{logins: stores.Logins, lifetime: cfg.RememberConsent, logger: cfg.Logger}
	signin := &signInFlow{
		issuer: cfg.Issuer, upstream: cfg.Upstream, passwords: cfg.Passwords, policy: rules,
		logins: stores.Logins, users: stores.Users, codes: stores.Codes, upstreamTokens: stores.UpstreamTokens,
		profileLifetime: cfg.RefreshTokenLifetime, log: log,
	}
	metadata := document(serverMetadata(cfg))
	grants := map[string]grantHandler{
		clients.GrantAuthorizationCode: &authorizationCodeGrant{
			codes: stores.Codes, grants: stores.Grants, revocations: stores.Revocations, upstreamTokens: stores.UpstreamTokens,
			resources: resources, policy: rules, mint: mint, log: log,
		},
		clients.GrantRefreshToken: &refreshTokenGrant{
			grants: stores.Grants, revocations: stores.Revocations, upstreamTokens: stores.UpstreamTokens,
			resources: resources, policy: rules, mint: mint, log: log,
		},
	}
	if len(machines) > 0 {
		grants[clients.GrantClientCredentials] = &clientCredentialsGrant{machines: machines, resources: resources, policy: rules, mint: mint, log: log}
	}
	var offeredGrants []string
	if len(cfg.EnterpriseIdPs) > 0 {
		offeredGrants = append(offeredGrants, GrantJWTBearer)
		grants[GrantJWTBearer] = &jwtBearerGrant{
			issuer: cfg.Issuer, idps: cfg.EnterpriseIdPs, used: stores.Clients, resources: resources, policy: rules, mint: mint, log: log,
		}
	}

	return []route{
		{"/.well-known/oauth-authorization-server" + issuerPath, "metadata", metadata},
		{"/.well-known/openid-configuration" + issuerPath, "metadata", metadata},
		// OpenID Connect Discovery appends its name to the issuer's path.
		{issuerPath + "/.well-known/openid-configuration", "metadata", metadata},
		{issuerPath + pathJWKS, "jwks", &jwksEndpoint{ring: cfg.Ring}},
		{issuerPath + pathRegister, "register", &registrationEndpoint{
			issuer: cfg.Issuer, initialAccessToken: cfg.RegistrationToken, perSource: cfg.RegistrationLimit, perHour: cfg.RegistrationsPerHour,
			sources: src, clients: stores.Clients, unusedLifetime: cfg.UnusedClientLifetime, offeredGrants: offeredGrants, log: log,
		}},
		{issuerPath + pathAuthorize, "authorize", &authorizeEndpoint{
			issuer: cfg.Issuer, limit: cfg.AuthorizeLimit, sources: src, directory: directory, resources: resources,
			logins: stores.Logins, browser: browser, consent: consent, signin: signin, descriptions: cfg.ScopeDescriptions,
			upstreamAccess: cfg.UpstreamAccess, log: log,
		}},
		{issuerPath + pathConsent, "consent", &consentEndpoint{
			issuer: cfg.Issuer, logins: stores.Logins, browser: browser, consent: consent, signin: signin, log: log,
		}},
		{issuerPath + pathCallback, "callback", &callbackEndpoint{
			issuer: cfg.Issuer, upstream: cfg.Upstream, logins: stores.Logins, browser: browser, signin: signin, log: log,
		}},
		{issuerPath + pathLogin, "login", &passwordLoginEndpoint{
			issuer: cfg.Issuer, passwords: cfg.Passwords, logins: stores.Logins, browser: browser, sources: src, signin: signin, log: log,
		}},
		{issuerPath + pathToken, "token", &tokenEndpoint{
			issuer: cfg.Issuer, auth: auth, clients: stores.Clients, grants: grants, log: log,
			proofs: &tokenProofs{endpoint: cfg.Issuer + pathToken, verifier: &dpop.Verifier{Replay: stores.Proofs, Nonces: cfg.DPoPNonces}},
		}},
		{issuerPath + pathRevoke, "revoke", &revocationEndpoint{
			issuer: cfg.Issuer, auth: auth, lookup: lookup, grants: stores.Grants, revocations: stores.Revocations, log: log,
		}},
		{issuerPath + pathIntrospect, "introspect", &introspectionEndpoint{
			issuer: cfg.Issuer, auth: auth, resourceServers: cfg.IntrospectionCredentials, lookup: lookup, log: log,
		}},
		{issuerPath + pathUserinfo, "userinfo", &userinfoEndpoint{realm: cfg.Realm, lookup: lookup, users: stores.Users, log: log}},
	}
}

// Route returns the endpoint at path, a cleaned request path, with its
// metric name (metadata, jwks, register, authorize, consent, login,
// callback, token, revoke, introspect, userinfo), or a nil handler if no
// endpoint of the server is there.
func (s *Server) Route(path string) (name string, serve http.Handler) {
	rt, ok := s.routes[path]
	if !ok {
		return "", nil
	}
	return rt.name, rt.handler
}

// IsPage reports whether p is the authorization endpoint or one of the
// pages below it (consent, login, callback): browsers navigate to them.
func (s *Server) IsPage(p string) bool {
	rest, ok := strings.CutPrefix(path.Clean("/"+p), s.issuerPath)
	return ok && (rest == pathAuthorize || strings.HasPrefix(rest, pathAuthorize+"/"))
}

// grantHandler redeems one grant type at the token endpoint.
type grantHandler interface {
	grant(ctx context.Context, client *authenticatedClient, params map[string]string, resources []string) (*tokenResponse, *oauth.Error)
}
