package oauth

import "strings"

// BearerChallenge is a WWW-Authenticate challenge of the Bearer scheme
// (RFC 6750 section 3), with RFC 9728 section 5.1's resource_metadata, or
// of the DPoP scheme, which has the same parameters and algs (RFC 9449
// section 7.1).
type BearerChallenge struct {
	// DPoP makes it a DPoP challenge.
	DPoP bool
	// Algs are the DPoP proof algorithms accepted, for a DPoP challenge.
	Algs []string
	// Realm is the protection space.
	Realm string
	// Code is the error code; "" for a request that had no credentials,
	// which RFC 6750 section 3.1 says gets none.
	Code ErrorCode
	// Description is the error_description, sent only with a Code.
	Description string
	// ResourceMetadata is the URL of the protected resource's metadata.
	ResourceMetadata string
	// Scopes are the scopes the request needs.
	Scopes []string
}

// String is the challenge as a header value. Values are made safe for a
// quoted-string.
func (c BearerChallenge) String() string {
	var b strings.Builder
	if c.DPoP {
		b.WriteString("DPoP")
	} else {
		b.WriteString("Bearer")
	}
	sep := " "
	param := func(name, value string) {
		b.WriteString(sep + name + `="` + quoteSafe(value) + `"`)
		sep = ", "
	}
	param("realm", c.Realm)
	if c.Code != "" {
		param("error", string(c.Code))
		if c.Description != "" {
			param("error_description", c.Description)
		}
	}
	if c.ResourceMetadata != "" {
		param("resource_metadata", c.ResourceMetadata)
	}
	if len(c.Scopes) > 0 {
		param("scope", strings.Join(c.Scopes, " "))
	}
	if c.DPoP && len(c.Algs) > 0 {
		param("algs", strings.Join(c.Algs, " "))
	}
	return b.String()
}

// BasicChallenge is the WWW-Authenticate value for a client that failed
// HTTP Basic authentication (RFC 6749 section 5.2, RFC 7617).
func BasicChallenge(realm string) string {
	return `Basic realm="` + quoteSafe(realm) + `"`
}

// quoteSafe drops the characters that cannot appear in a quoted-string
// parameter of a challenge (RFC 6750 section 3: %x20-21 / %x23-5B / %x5D-7E).
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}
