package authserver

import (
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
)

// The assertion_optional exception applies to exactly the clients named:
// by their client_id, or by the host of their client_id, port included.
func TestAssertionOptionalNamesOnlyListedClients(t *testing.T) {
	as := &clientAuthenticator{assertionOptional: []string{"chatgpt.com", "https://clients.example.net/app/client.json", "ports.example:8443"}}
	for id, want := range map[string]bool{
		"https://chatgpt.com/oauth/abc/client.json":     true,
		"https://ChatGPT.com/oauth/abc/client.json":     true,
		"https://chatgpt.com:443/oauth/abc/client.json": false,
		"https://chatgpt.com.evil.example/client.json":  false,
		"https://evil.example/chatgpt.com/client.json":  false,
		"https://sub.chatgpt.com/client.json":           false,
		"https://clients.example.net/app/client.json":   true,
		"https://clients.example.net/app/client.json/":  false,
		"https://clients.example.net/app/other.json":    false,
		"https://ports.example:8443/client.json":        true,
		"https://ports.example/client.json":             false,
	} {
		c := &clients.Client{ClientID: id, Metadata: true, TokenEndpointAuthMethod: clients.AuthMethodPrivateKeyJWT}
		if got := as.mayOmitAssertion(c); got != want {
			t.Errorf("%s: %v, want %v", id, got, want)
		}
	}
	registered := &clients.Client{ClientID: "chatgpt.com", TokenEndpointAuthMethod: clients.AuthMethodPrivateKeyJWT}
	if as.mayOmitAssertion(registered) {
		t.Error("the exception applied to a client that has no metadata document")
	}
}
