package clients

import (
	"strings"
	"testing"
	"time"
)

// No id registration mints can be configured: whatever the operator
// writes, a registration can never take a configured client's id.
func TestRegisteredIDsCannotBeConfigured(t *testing.T) {
	for range 2000 {
		c, _, err := NewRegistration([]byte(`{"redirect_uris":["https://c.example/cb"]}`), time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if CheckConfiguredID(c.ClientID) == nil {
			t.Fatalf("registered id %q accepted for a configured client", c.ClientID)
		}
	}
}

// FuzzCheckConfiguredID checks that an accepted id is short, can never be
// a metadata document URL or a user's provider:id subject, never has the
// form of registered ids, and survives the places it travels unchanged
// (HTTP Basic's form-encoding, URL paths of the admin API).
func FuzzCheckConfiguredID(f *testing.F) {
	for _, seed := range []string{"agent-1", "ci.deploy", "a~b", "https://a.example/c", "github:1", "AAAAAAAAAAAAAAAAAAAAAA",
		"AAAAAAAAAAAAAAAAAAAAA.", "", strings.Repeat("a", 65), "ü", "a b", "a/b", "a%41"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if CheckConfiguredID(id) != nil {
			return
		}
		switch {
		case len(id) == 0 || len(id) > 64:
			t.Fatalf("%q: length %d accepted", id, len(id))
		case IsMetadataURL(id) || strings.ContainsAny(id, ":/%?#@ +"):
			t.Fatalf("%q: a URL, subject or escaped form accepted", id)
		case len(id) == 22 && strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == "":
			t.Fatalf("%q: the form of registered ids accepted", id)
		}
	})
}
