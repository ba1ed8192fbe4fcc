package tokens

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// ClaimRules says what the registered claims of a verified JWT must be
// (RFC 7519 section 4.1). Every signed token the server checks applies its
// rules through Check; the caller turns a failure into its own message.
type ClaimRules struct {
	// Now is the time to check against; Skew the clock skew tolerated on
	// exp, nbf and iat.
	Now  time.Time
	Skew time.Duration
	// Issuers are the accepted iss values; none means iss is not checked.
	Issuers []string
	// Audiences: aud must contain one of them; none means aud is not
	// checked. Compared exactly: a look-alike URL is another audience.
	Audiences []string
	// RequireExpiry and RequireIssuedAt refuse a token without exp or iat.
	RequireExpiry, RequireIssuedAt bool
	// MaxLifetime, if set, bounds how far exp may be ahead of Now.
	MaxLifetime time.Duration
}

// RegisteredClaims are the claims ClaimRules checks. A zero time is an
// absent claim.
type RegisteredClaims struct {
	Issuer                      string
	Audience                    Audience
	Expiry, NotBefore, IssuedAt time.Time
}

// ClaimFailure is which rule a token's claims break.
type ClaimFailure int

const (
	// ClaimIssuer: iss is not one of ClaimRules.Issuers.
	ClaimIssuer ClaimFailure = iota + 1
	// ClaimAudience: aud holds none of ClaimRules.Audiences.
	ClaimAudience
	// ClaimNoExpiry: exp is required and absent.
	ClaimNoExpiry
	// ClaimExpired: exp, plus the skew, is past.
	ClaimExpired
	// ClaimExpiryTooFar: exp is further ahead than MaxLifetime.
	ClaimExpiryTooFar
	// ClaimNotYetValid: nbf, less the skew, is ahead.
	ClaimNotYetValid
	// ClaimNoIssuedAt: iat is required and absent.
	ClaimNoIssuedAt
	// ClaimIssuedInFuture: iat, less the skew, is ahead.
	ClaimIssuedInFuture
)

// Check returns the first rule the claims break, in the order of the
// constants above, or 0 if they keep them all.
func (r ClaimRules) Check(c RegisteredClaims) ClaimFailure {
	if len(r.Issuers) > 0 && !slices.Contains(r.Issuers, c.Issuer) {
		return ClaimIssuer
	}
	if len(r.Audiences) > 0 && !slices.ContainsFunc(c.Audience, func(aud string) bool { return slices.Contains(r.Audiences, aud) }) {
		return ClaimAudience
	}
	latest := r.Now.Add(r.Skew) // the latest time a claim may name as past
	switch {
	case c.Expiry.IsZero():
		if r.RequireExpiry {
			return ClaimNoExpiry
		}
	case r.Now.After(c.Expiry.Add(r.Skew)):
		return ClaimExpired
	case r.MaxLifetime > 0 && c.Expiry.After(latest.Add(r.MaxLifetime)):
		return ClaimExpiryTooFar
	}
	if !c.NotBefore.IsZero() && c.NotBefore.After(latest) {
		return ClaimNotYetValid
	}
	switch {
	case c.IssuedAt.IsZero():
		if r.RequireIssuedAt {
			return ClaimNoIssuedAt
		}
	case c.IssuedAt.After(latest):
		return ClaimIssuedInFuture
	}
	return 0
}

// unixTime is a whole-second claim as a time, zero when the claim is 0
// (absent).
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

// TimeOrZero returns the date as a time.Time, zero if d is nil (the claim is
// absent).
func (d *NumericDate) TimeOrZero() time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time()
}

// DecodeExact decodes into v the members of the JSON object payload whose
// names are exactly one of names. encoding/json alone also takes "ISS" or
// "Sub" for a field named iss or sub, which JWT libraries elsewhere do not
// read as those claims: a sender could show each reader something else.
func DecodeExact(payload []byte, names []string, v any) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(payload, &members); err != nil {
		return err
	}
	exact := make(map[string]json.RawMessage, len(names))
	for _, name := range names {
		if m, ok := members[name]; ok {
			exact[name] = m
		}
	}
	buf, err := json.Marshal(exact)
	if err != nil {
		return err
	}
	return json.Unmarshal(buf, v)
}

// UnverifiedClaims decodes the claims named names of a compact JWS of at
// most maxLength bytes into dst, verifying nothing: for choosing what to
// verify it with (a client's keys, an issuer's). It reports whether the
// token could be read.
func UnverifiedClaims(token string, maxLength int, names []string, dst any) bool {
	if len(token) > maxLength || strings.Count(token, ".") != 2 || !IsCompactJWSText(token) {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	return err == nil && DecodeExact(payload, names, dst) == nil
}
