package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Identity assertion grants (ID-JAG, draft-ietf-oauth-identity-assertion-
// authz-grant), as the MCP extension Enterprise-Managed Authorization
// profiles them.
const (
	// GrantJWTBearer is the grant type of RFC 7523 section 2.1, which
	// carries them.
	GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// IDJAGProfile names the profile in the server metadata's
	// authorization_grant_profiles_supported.
	IDJAGProfile = "urn:ietf:params:oauth:grant-profile:id-jag"
	// idJAGType is the JOSE typ an ID-JAG must carry, compared exactly.
	idJAGType = "oauth-id-jag+jwt"
	// maxIDJAGLength bounds what is parsed at all.
	maxIDJAGLength = 16 << 10
	// idJAGSkew is the clock skew tolerated on exp, nbf and iat.
	idJAGSkew = 30 * time.Second
	// maxIDJAGLifetime bounds how far ahead exp may be, and so how long
	// its jti is remembered, and how long after its iat an ID-JAG is
	// taken: no longer than a revocation's mark, which a redemption
	// checks with the iat. Identity providers issue them for minutes.
	maxIDJAGLifetime = state.RevocationMarkLifetime
)

// EnterpriseIdP is an enterprise identity provider whose identity assertion
// grants the token endpoint redeems for access tokens.
type EnterpriseIdP struct {
	// Issuer is its issuer identifier, compared exactly with iss.
	Issuer string
	// Keys returns its published keys that may verify a token whose
	// header names kid and alg (tokens.RemoteVerifier.SigningKeys).
	Keys func(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]any, error)
	// Clients, if any, are the only clients that may present its grants.
	Clients []string
}

// Upstream is the identity users it vouches for carry in state.User.Upstream.
func (p *EnterpriseIdP) Upstream() string { return "enterprise " + p.Issuer }

// EnterpriseSubject is the subject of a user an enterprise identity
// provider asserts: its issuer and its sub, apart from every other
// provider's subjects. Rules name such users this way.
func EnterpriseSubject(issuer, sub string) string { return issuer + "#" + sub }

// UsedIdentityAssertions remembers the identity assertion grants redeemed.
type UsedIdentityAssertions interface {
	// UseIdentityAssertion records the jti of a grant of the identity
	// provider issuer as used for ttl and reports whether it was not used
	// before: of concurrent callers with one jti, exactly one is told so.
	UseIdentityAssertion(ctx context.Context, issuer, jti string, ttl time.Duration) (bool, error)
}

// idJAGClaims are the claims of an ID-JAG that the grant reads.
type idJAGClaims struct {
	Issuer        string              `json:"iss"`
	Subject       string              `json:"sub"`
	Audience      tokens.Audience     `json:"aud"`
	ClientID      string              `json:"client_id"`
	JWTID         string              `json:"jti"`
	Expiry        *tokens.NumericDate `json:"exp"`
	NotBefore     *tokens.NumericDate `json:"nbf"`
	IssuedAt      *tokens.NumericDate `json:"iat"`
	Resource      tokens.Audience     `json:"resource"`
	Scope         *string             `json:"scope"`
	Email         string              `json:"email"`
	EmailVerified *bool               `json:"email_verified"`
	Name          string              `json:"name"`
}

// idJAGClaimNames are the members of idJAGClaims, exactly as spelled.
var idJAGClaimNames = []string{"iss", "sub", "aud", "client_id", "jti", "exp", "nbf", "iat", "resource", "scope", "email", "email_verified", "name"}

// jwtBearerGrant redeems identity assertion grants of trusted enterprise
// identity providers.
type jwtBearerGrant struct {
	issuer    string
	idps      []EnterpriseIdP
	used      UsedIdentityAssertions
	resources *resourceSet
	policy    *policy
	mint      *minter
	log       *events
}

// grant handles grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer with
// an ID-JAG (RFC 7523 section 2.1, RFC 7521 section 5.2, the MCP
// Enterprise-Managed Authorization extension section 5.1), for clients
// that authenticate with a secret or a key. The assertion
// must be typed oauth-id-jag+jwt, signed by a configured identity provider
// with an asymmetric algorithm, for this server (aud), for the client that
// authenticated (client_id), current, and name one of the protected
// resources (resource, which the MCP profile requires). Its jti is spent
// only once everything else holds, so a request refused for a reason the
// client can fix may be sent again. No refresh token is issued: the draft
// says the server SHOULD NOT, as the client gets a new ID-JAG from the
// identity provider instead, which keeps the enterprise's policy in force.
func (h *jwtBearerGrant) grant(ctx context.Context, client *authenticatedClient, params map[string]string, resources []string) (*tokenResponse, *oauth.Error) {
	if !client.provedCredential() {
		// Anyone may name a public client: the ID-JAG would be a bearer
		// credential for whoever got hold of it.
		return nil, oauth.NewError(http.StatusBadRequest, oauth.UnauthorizedClient, "identity assertion grants need an authenticated client")
	}
	assertion := params["assertion"]
	if assertion == "" {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "assertion is required")
	}
	idp, claims, oerr := h.verify(ctx, assertion, client)
	if oerr != nil {
		return nil, oerr
	}
	if len(claims.Resource) == 0 {
		// Some identity providers leave it out; the token would not know
		// which resource it is for.
		return nil, badIDJAG("the ID-JAG has no resource claim, which the MCP profile requires")
	}
	res, oerr := h.resources.resolve(claims.Resource, nil)
	if oerr != nil {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidTarget, "the ID-JAG's resource is not served by this authorization server")
	}
	if len(resources) > 0 {
		if asked, oerr := h.resources.resolve(resources, nil); oerr != nil || asked != res {
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidTarget, "the resource differs from the ID-JAG's")
		}
	}
	offered := h.resources.grantable(res)
	scopes, oerr := idJAGScopes(offered, claims.Scope, params)
	if oerr != nil {
		return nil, oerr
	}
	if len(scopes) == 0 {
		scopes = h.resources.requestedScopes(res, "")
	}
	user := enterpriseUser(idp, claims)
	permitted, allowed := h.policy.admit(&user, scopes)
	if !allowed {
		h.log.record(ctx, "identity assertion refused: the user is not allowed", zap.String("client_id", client.ClientID),
			zap.String("sub", user.Subject), zap.String("idp", idp.Issuer))
		return nil, badIDJAG("the user is not allowed to use this server")
	}
	if slices.ContainsFunc(scopes, func(sc string) bool { return slices.Contains(offered, sc) }) &&
		!slices.ContainsFunc(permitted, func(sc string) bool { return slices.Contains(offered, sc) }) {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidScope, "the user may have none of the requested scopes")
	}

	unavailable := oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the server could not issue tokens")
	ttl := max(time.Until(claims.Expiry.Time().Add(idJAGSkew)), time.Second)
	switch fresh, err := h.used.UseIdentityAssertion(ctx, idp.Issuer, claims.JWTID, ttl); {
	case err != nil:
		return nil, unavailable.WithCause(fmt.Errorf("recording the ID-JAG's jti: %w", err))
	case !fresh:
		h.log.record(ctx, "identity assertion replayed; refused", zap.String("client_id", client.ClientID), zap.String("idp", idp.Issuer))
		return nil, badIDJAG("the ID-JAG has already been used")
	}
	resp, at, err := h.mint.accessToken(ctx, client.Client, user, res, permitted, "")
	if err != nil {
		return nil, unavailable.WithCause(fmt.Errorf("issuing tokens: %w", err))
	}
	// As for an authorization code, checked once the token is stored: an
	// ID-JAG issued before the user or the client was revoked issues
	// nothing, and a revocation listing their tokens meanwhile either
	// found this one or is seen here (see state.Revocations.RevokedSince).
	revoked, markErr := h.mint.revocations.RevokedSince(ctx, user.Subject, client.ClientID, claims.IssuedAt.Time().UnixNano())
	if markErr != nil || revoked {
		if err := h.mint.revocations.DenyAccessToken(ctx, at.ID, at.ExpiresAt); err != nil {
			h.log.logger.Error("taking back a token issued during a revocation", zap.Error(err))
		}
		if markErr != nil {
			return nil, unavailable.WithCause(markErr)
		}
		h.log.record(ctx, "identity assertion issued before a revocation of its user or client; nothing issued", zap.String("client_id", client.ClientID),
			zap.String("sub", user.Subject), zap.String("idp", idp.Issuer))
		return nil, badIDJAG("the ID-JAG was issued before its user's or client's tokens were revoked")
	}
	h.log.record(ctx, "identity assertion exchanged", zap.String("client_id", client.ClientID), zap.String("sub", user.Subject),
		zap.String("idp", idp.Issuer), zap.String("resource", res.URL), zap.Strings("scopes", permitted))
	h.log.tokensIssued("jwt_bearer", client.ClientID, user.Subject)
	return resp, nil
}

// verify checks the ID-JAG's header, signature and claims in the order
// the profile lists them, and returns the identity provider that signed it
// with its claims.
func (h *jwtBearerGrant) verify(ctx context.Context, assertion string, client *authenticatedClient) (*EnterpriseIdP, *idJAGClaims, *oauth.Error) {
	// The issuer picks the keys, so it is read before the signature is
	// checked, and trusted only once the signature holds.
	idp := h.provider(unverifiedIssuer(assertion))
	payload, err := tokens.VerifyJWS(ctx, assertion, tokens.JWSRules{
		MaxLength:  maxIDJAGLength,
		Algorithms: tokens.RemoteAlgorithms,
		Type:       func(typ string) bool { return typ == idJAGType },
		Keys: func(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]any, error) {
			if idp == nil {
				return nil, errUntrustedIdP
			}
			return idp.Keys(ctx, kid, alg)
		},
	})
	var jerr *tokens.JWSError
	var invalidKey *tokens.InvalidTokenError
	switch {
	case errors.As(err, &jerr):
		switch jerr.Failure {
		case tokens.JWSTypeRejected:
			return nil, nil, badIDJAG("the assertion is not an ID-JAG: its typ must be " + idJAGType)
		case tokens.JWSAlgorithmRejected:
			return nil, nil, badIDJAG("the ID-JAG's algorithm is not allowed")
		case tokens.JWSSignatureInvalid:
			return nil, nil, badIDJAG("the ID-JAG's signature is invalid")
		}
		return nil, nil, badIDJAG("the assertion is not a signed JWT")
	case errors.Is(err, errUntrustedIdP):
		return nil, nil, badIDJAG("the ID-JAG's issuer is not a trusted identity provider")
	case errors.As(err, &invalidKey):
		return nil, nil, badIDJAG("the ID-JAG is not signed by a key of its identity provider")
	case err != nil:
		return nil, nil, oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the identity provider's keys could not be fetched").
			WithCause(fmt.Errorf("verifying an ID-JAG of %s: %w", idp.Issuer, err))
	}
	var c idJAGClaims
	if err := tokens.DecodeExact(payload, idJAGClaimNames, &c); err != nil {
		return nil, nil, badIDJAG("the ID-JAG's claims are malformed")
	}
	rules := tokens.ClaimRules{
		Now: time.Now(), Skew: idJAGSkew,
		Issuers:       []string{idp.Issuer},
		Audiences:     []string{h.issuer},
		RequireExpiry: true, RequireIssuedAt: true,
		MaxLifetime: maxIDJAGLifetime,
	}
	switch rules.Check(tokens.RegisteredClaims{
		Issuer: c.Issuer, Audience: c.Audience,
		Expiry: c.Expiry.TimeOrZero(), NotBefore: c.NotBefore.TimeOrZero(), IssuedAt: c.IssuedAt.TimeOrZero(),
	}) {
	case 0:
	case tokens.ClaimIssuer:
		return nil, nil, badIDJAG("the ID-JAG's issuer is not a trusted identity provider")
	case tokens.ClaimAudience:
		return nil, nil, badIDJAG("the ID-JAG's audience is not this authorization server")
	case tokens.ClaimNoExpiry, tokens.ClaimNoIssuedAt:
		return nil, nil, badIDJAG("the ID-JAG lacks exp or iat")
	case tokens.ClaimExpired:
		return nil, nil, badIDJAG("the ID-JAG has expired")
	case tokens.ClaimExpiryTooFar:
		return nil, nil, badIDJAG("the ID-JAG expires too far in the future")
	default:
		return nil, nil, badIDJAG("the ID-JAG is not valid yet")
	}
	if c.Expiry.Time().Sub(c.IssuedAt.Time()) > maxIDJAGLifetime || rules.Now.Sub(c.IssuedAt.Time()) > maxIDJAGLifetime {
		return nil, nil, badIDJAG("the ID-JAG lives longer than a revocation is remembered")
	}
	switch {
	case c.ClientID != client.ClientID:
		return nil, nil, badIDJAG("the ID-JAG was issued to another client")
	case len(idp.Clients) > 0 && !slices.Contains(idp.Clients, client.ClientID):
		return nil, nil, oauth.NewError(http.StatusBadRequest, oauth.UnauthorizedClient, "the client may not present this identity provider's grants")
	case c.JWTID == "":
		return nil, nil, badIDJAG("the ID-JAG has no jti")
	case c.Subject == "":
		return nil, nil, badIDJAG("the ID-JAG has no sub")
	}
	return idp, &c, nil
}

// errUntrustedIdP is why no key verifies an ID-JAG whose issuer is not
// configured: none is looked for.
var errUntrustedIdP = errors.New("the issuer is not a trusted identity provider")

func badIDJAG(description string) *oauth.Error {
	return oauth.NewError(http.StatusBadRequest, oauth.InvalidGrant, description)
}

// provider returns the identity provider whose issuer is exactly iss.
func (h *jwtBearerGrant) provider(iss string) *EnterpriseIdP {
	for i := range h.idps {
		if h.idps[i].Issuer == iss {
			return &h.idps[i]
		}
	}
	return nil
}

// unverifiedIssuer returns the iss claim of a compact JWS without
// verifying anything, or "" if it cannot be read.
func unverifiedIssuer(token string) string {
	var c idJAGClaims
	tokens.UnverifiedClaims(token, maxIDJAGLength, []string{"iss"}, &c)
	return c.Issuer
}

// idJAGScopes returns the scopes to grant: those the request's scope
// parameter names, each of which the ID-JAG must grant, or else the
// ID-JAG's. The identity provider decides what the client may have, so a
// scope neither the resource (offered) nor OpenID Connect offers is an
// error, not dropped; offline_access is dropped, as no refresh token is
// issued. None means the resource's default ones, as for a login.
func idJAGScopes(offered []string, granted *string, params map[string]string) ([]string, *oauth.Error) {
	var scopes []string
	if granted != nil {
		scopes = strings.Fields(*granted)
	}
	if requested, ok := params["scope"]; ok {
		asked := strings.Fields(requested)
		for _, sc := range asked {
			if granted != nil && sc != OfflineAccess && !slices.Contains(scopes, sc) {
				return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidScope, "a requested scope exceeds the ID-JAG's")
			}
		}
		scopes = asked
	}
	var out []string
	for _, sc := range scopes {
		switch {
		case sc == OfflineAccess || slices.Contains(out, sc):
		case !slices.Contains(offered, sc) && !slices.Contains(oidcScopes, sc):
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidScope, "the scope "+sc+" is not offered by the resource")
		default:
			out = append(out, sc)
		}
	}
	return out, nil
}

// enterpriseUser is the user an ID-JAG asserts. Its email is kept only
// when it is one bare address the provider says is verified, as for an
// OpenID Connect login: an unverified address proves nothing about the
// user, and allow rules match on it.
func enterpriseUser(idp *EnterpriseIdP, c *idJAGClaims) state.User {
	u := state.User{
		Subject:  EnterpriseSubject(idp.Issuer, c.Subject),
		Name:     c.Name,
		AuthTime: time.Now().Unix(),
		Upstream: idp.Upstream(),
	}
	if _, _, ok := CanonicalEmail(c.Email); ok && c.EmailVerified != nil && *c.EmailVerified {
		u.Email = c.Email
	}
	return u
}
