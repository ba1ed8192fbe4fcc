package oauthtest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// DecodeJWT returns the JOSE header and the claims of a JWT without
// verifying it.
func DecodeJWT(t testing.TB, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", token)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(raw, dst) != nil {
			t.Fatalf("JWT part %d is not base64url JSON: %v", i, err)
		}
	}
	return header, claims
}
