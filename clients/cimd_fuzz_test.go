package clients

import (
	"encoding/json"
	"slices"
	"testing"
)

// FuzzParseDocument feeds metadata documents, as fetched from a client_id
// URL, to the validator. Whatever it accepts must be a client the rest of
// the server can trust: its client_id is the URL it was fetched from, as
// the document itself says it (read again by a plain decoder), its
// redirect URIs are the document's and each passes the redirect rules, it
// holds no secret, and its keys, if any, are public keys at an https URL
// or in a valid inline set.
func FuzzParseDocument(f *testing.F) {
	const id = "https://client.test/oauth/client.json"
	f.Add(id, doc(id, nil))
	f.Add(id, doc(id, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://client.test/jwks"}))
	f.Add(id, doc(id, map[string]any{"token_endpoint_auth_method": "private_key_jwt",
		"jwks": map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "kid": "k1",
			"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}}}))
	f.Add(id, doc(id, map[string]any{"redirect_uris": []string{"cursor://anysphere.cursor-mcp/oauth/callback", "com.example.app:/cb"}}))
	f.Add(id, doc(id+"/", nil))
	f.Add(id, doc(id, map[string]any{"client_secret": "s"}))
	f.Add(id, []byte(`{"client_id":"https://evil.test/c.json","client_id":"`+id+`","client_name":"x","redirect_uris":["https://client.test/cb"]}`))
	f.Add(id, []byte(`{"Client_ID":"`+id+`","client_name":"x","redirect_uris":["https://client.test/cb"]}`))
	f.Add(id, doc(id, map[string]any{"redirect_uris": []string{"javascript:alert(1)//"}}))
	f.Fuzz(func(t *testing.T, clientID string, body []byte) {
		c, err := parseDocument(clientID, body, nil)
		if err != nil {
			if c != nil {
				t.Fatal("a refused document returned a client")
			}
			return
		}
		var plain map[string]any
		if err := json.Unmarshal(body, &plain); err != nil {
			t.Fatalf("accepted a document a plain decoder cannot read: %v", err)
		}
		if c.ClientID != clientID || plain["client_id"] != clientID || !c.Metadata {
			t.Fatalf("accepted client_id %q (document says %v) for a document fetched from %q", c.ClientID, plain["client_id"], clientID)
		}
		if plain["client_secret"] != nil || c.SecretHash != "" {
			t.Fatal("accepted a document with a client secret")
		}
		documented, _ := plain["redirect_uris"].([]any)
		if len(c.RedirectURIs) == 0 || len(c.RedirectURIs) > maxRedirectURIs {
			t.Fatalf("accepted %d redirect URIs", len(c.RedirectURIs))
		}
		for _, u := range c.RedirectURIs {
			if err := ValidateRedirectURI(u); err != nil {
				t.Fatalf("accepted redirect URI %q: %v", u, err)
			}
			if !slices.Contains(documented, any(u)) {
				t.Fatalf("redirect URI %q is not one the document lists", u)
			}
			if got, ok := MatchRedirectURI(c.RedirectURIs, u); !ok || got != u {
				t.Fatalf("registered redirect URI %q does not match itself", u)
			}
		}
		switch c.TokenEndpointAuthMethod {
		case AuthMethodNone:
		case AuthMethodPrivateKeyJWT:
			if c.JWKSURI != "" && !isHTTPSURL(c.JWKSURI) {
				t.Fatalf("accepted jwks_uri %q", c.JWKSURI)
			}
			if c.JWKSURI == "" {
				if _, err := parseJWKS(c.JWKS); err != nil {
					t.Fatalf("accepted inline keys that do not parse: %v", err)
				}
			}
		default:
			t.Fatalf("accepted token_endpoint_auth_method %q", c.TokenEndpointAuthMethod)
		}
		if c.ClientName == "" {
			t.Fatal("accepted a document without client_name")
		}
	})
}
