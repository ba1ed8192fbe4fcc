package tokens

import (
	"testing"
	"time"
)

func TestClaimRules(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	const skew = 30 * time.Second
	rules := ClaimRules{
		Now: now, Skew: skew,
		Issuers:   []string{testIssuer},
		Audiences: []string{testAudience, testAudience + "/other"},
	}
	good := RegisteredClaims{
		Issuer: testIssuer, Audience: Audience{"account", testAudience},
		Expiry: now.Add(time.Hour), NotBefore: now, IssuedAt: now,
	}
	with := func(edit func(*RegisteredClaims)) RegisteredClaims {
		c := good
		edit(&c)
		return c
	}
	strict := rules
	strict.RequireExpiry, strict.RequireIssuedAt, strict.MaxLifetime = true, true, 10*time.Minute
	tests := []struct {
		name   string
		rules  ClaimRules
		claims RegisteredClaims
		want   ClaimFailure
	}{
		{"valid", rules, good, 0},
		{"other issuer", rules, with(func(c *RegisteredClaims) { c.Issuer = testIssuer + "/" }), ClaimIssuer},
		{"no issuer", rules, with(func(c *RegisteredClaims) { c.Issuer = "" }), ClaimIssuer},
		{"issuer not checked", ClaimRules{Now: now}, with(func(c *RegisteredClaims) { c.Issuer = "x"; c.Audience = nil }), 0},
		{"other audience", rules, with(func(c *RegisteredClaims) { c.Audience = Audience{"https://mcp.example.com/mcp/"} }), ClaimAudience},
		{"no audience", rules, with(func(c *RegisteredClaims) { c.Audience = nil }), ClaimAudience},
		{"second accepted audience", rules, with(func(c *RegisteredClaims) { c.Audience = Audience{testAudience + "/other"} }), 0},
		{"expired beyond the skew", rules, with(func(c *RegisteredClaims) { c.Expiry = now.Add(-skew - time.Second) }), ClaimExpired},
		{"expired within the skew", rules, with(func(c *RegisteredClaims) { c.Expiry = now.Add(-skew) }), 0},
		{"no exp, not required", rules, with(func(c *RegisteredClaims) { c.Expiry = time.Time{} }), 0},
		{"no exp, required", strict, with(func(c *RegisteredClaims) { c.Expiry = time.Time{} }), ClaimNoExpiry},
		{"exp too far ahead", strict, good, ClaimExpiryTooFar},
		{"exp at the longest lifetime", strict, with(func(c *RegisteredClaims) { c.Expiry = now.Add(10*time.Minute + skew) }), 0},
		{"not valid yet", rules, with(func(c *RegisteredClaims) { c.NotBefore = now.Add(skew + time.Second) }), ClaimNotYetValid},
		{"nbf within the skew", rules, with(func(c *RegisteredClaims) { c.NotBefore = now.Add(skew) }), 0},
		{"issued in the future", rules, with(func(c *RegisteredClaims) { c.IssuedAt = now.Add(skew + time.Second) }), ClaimIssuedInFuture},
		{"no iat, required", withRules(strict, func(r *ClaimRules) { r.MaxLifetime = 0 }), with(func(c *RegisteredClaims) { c.IssuedAt = time.Time{} }), ClaimNoIssuedAt},
		{"issuer before audience", rules, with(func(c *RegisteredClaims) { c.Issuer = "x"; c.Audience = nil }), ClaimIssuer},
		{"audience before expiry", rules, with(func(c *RegisteredClaims) { c.Audience = nil; c.Expiry = now.Add(-time.Hour) }), ClaimAudience},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rules.Check(tc.claims); got != tc.want {
				t.Errorf("Check = %d, want %d", got, tc.want)
			}
		})
	}
}

func withRules(r ClaimRules, edit func(*ClaimRules)) ClaimRules {
	edit(&r)
	return r
}
