package authserver

import (
	"context"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// A refresh is refused, with the error OAuth 2.1 section 5.2 names, unless
// the token is a live one of this client's, presented with at least the
// authentication the grant was made with, for no more scope and no other
// resource than the grant's.
func TestRefreshRefusals(t *testing.T) {
	public, confidential := testClient(clients.AuthMethodNone), testClient(clients.AuthMethodClientSecretBasic)
	other := &authenticatedClient{Method: clients.AuthMethodNone, Client: &clients.Client{ClientID: "c2"}}
	for _, tc := range []struct {
		name string
		// grantee is the client the grant is made for, caller the one
		// that refreshes.
		grantee, caller *authenticatedClient
		params          map[string]string
		resources       []string
		code            oauth.ErrorCode
	}{
		{"unknown token", public, public, map[string]string{"refresh_token": "forged"}, nil, oauth.InvalidGrant},
		{"another client's token", public, other, nil, nil, oauth.InvalidGrant},
		{"weaker authentication than the grant's", confidential, public, nil, nil, oauth.InvalidGrant},
		{"a scope beyond the grant", public, public, map[string]string{"scope": "mcp:read mcp:write"}, nil, oauth.InvalidScope},
		{"another resource", public, public, nil, []string{"https://other.example/mcp"}, oauth.InvalidTarget},
		{"the grant's own", public, public, map[string]string{"scope": "mcp:read"}, []string{testResource}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, stores := codeServer(t, storagetest.Badger(t))
			issued, oerr := issueCode(t, s, stores, tc.grantee)()
			if oerr != nil {
				t.Fatal(oerr)
			}
			params := map[string]string{"refresh_token": issued.RefreshToken}
			for k, v := range tc.params {
				params[k] = v
			}
			resp, oerr := refreshGrant(s).grant(context.Background(), tc.caller, params, tc.resources)
			switch {
			case tc.code == "" && (oerr != nil || resp.RefreshToken == "" || resp.RefreshToken == issued.RefreshToken):
				t.Fatalf("%+v %v, want a rotated refresh token", resp, oerr)
			case tc.code != "" && (oerr == nil || oerr.Code != tc.code):
				t.Fatalf("%+v %v, want %s", resp, oerr, tc.code)
			}
		})
	}
}

// A refresh token presented again within the grace window gets the same
// successor; presented after its successor was rotated too, it was stolen,
// and the whole grant ends.
func TestRefreshTokenReuse(t *testing.T) {
	s, stores := codeServer(t, storagetest.Badger(t))
	client := testClient(clients.AuthMethodNone)
	issued, oerr := issueCode(t, s, stores, client)()
	if oerr != nil {
		t.Fatal(oerr)
	}
	refresh := func(rt string) (*tokenResponse, *oauth.Error) {
		return refreshGrant(s).grant(context.Background(), client, map[string]string{"refresh_token": rt}, nil)
	}
	second, oerr := refresh(issued.RefreshToken)
	if oerr != nil {
		t.Fatal(oerr)
	}
	if again, oerr := refresh(issued.RefreshToken); oerr != nil || again.RefreshToken != second.RefreshToken {
		t.Fatalf("replay within the grace window: %+v %v, want the same successor", again, oerr)
	}
	third, oerr := refresh(second.RefreshToken)
	if oerr != nil {
		t.Fatal(oerr)
	}
	if _, oerr := refresh(issued.RefreshToken); oerr == nil || oerr.Code != oauth.InvalidGrant {
		t.Fatalf("a token two rotations old: %v, want invalid_grant", oerr)
	}
	if _, oerr := refresh(third.RefreshToken); oerr == nil || oerr.Code != oauth.InvalidGrant {
		t.Fatalf("the newest token after a reuse: %v, want invalid_grant: the grant is revoked", oerr)
	}
}
