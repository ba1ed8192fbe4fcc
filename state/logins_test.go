package state

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// A login is read as often as its page is shown and used up once.
func TestLoginUsedUpOnce(t *testing.T) {
	l := openStores(t, storagetest.Badger(t)).Logins
	ctx := context.Background()
	if err := l.StartLogin(ctx, "the-state", &UpstreamLogin{Request: Request{ClientID: "c1"}, Verifier: "v"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if login, err := l.Login(ctx, "the-state"); err != nil || login.Request.ClientID != "c1" {
			t.Fatalf("Login: %+v %v", login, err)
		}
	}
	if login, err := l.TakeLogin(ctx, "the-state"); err != nil || login.Verifier != "v" {
		t.Fatalf("TakeLogin: %+v %v", login, err)
	}
	if _, err := l.TakeLogin(ctx, "the-state"); err == nil {
		t.Error("a login was taken twice")
	}
	if err := l.EndLogin(ctx, "the-state"); err == nil {
		t.Error("a login taken was ended again")
	}
}

// Consent is remembered per browser, client and redirect URI.
func TestConsentRememberedPerBrowserClientAndRedirect(t *testing.T) {
	l := openStores(t, storagetest.Badger(t)).Logins
	ctx := context.Background()
	req := &Request{ClientID: "c1", RedirectURI: "https://c.example/cb", Browser: Hash("browser"), Resource: "https://h.example/mcp", Scopes: []string{"mcp"}}
	if err := l.RememberConsent(ctx, req, time.Hour); err != nil {
		t.Fatal(err)
	}
	if c, err := l.Consent(ctx, req); err != nil || c.Resource != req.Resource || len(c.Scopes) != 1 {
		t.Fatalf("Consent: %+v %v", c, err)
	}
	for name, other := range map[string]Request{
		"another browser":      {ClientID: "c1", RedirectURI: req.RedirectURI, Browser: Hash("other")},
		"another client":       {ClientID: "c2", RedirectURI: req.RedirectURI, Browser: req.Browser},
		"another redirect URI": {ClientID: "c1", RedirectURI: "https://c.example/other", Browser: req.Browser},
	} {
		if c, err := l.Consent(ctx, &other); err == nil {
			t.Errorf("%s: consent %+v found", name, c)
		}
	}
}
