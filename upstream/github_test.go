package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
)

var octocat = fakeidp.GitHubUser{
	ID:        583231,
	Login:     "Octocat",
	Name:      "The Octocat",
	AvatarURL: "https://avatars.githubusercontent.com/u/583231?v=4",
	Emails: []fakeidp.GitHubEmail{
		{Email: "old@example.com", Verified: false, Visibility: "private"},
		{Email: "octocat@example.com", Primary: true, Verified: true, Visibility: "public"},
		{Email: "work@example.com", Verified: true},
	},
	Orgs: []string{"GitHub", "octo-org"},
}

func newGitHubPair(t *testing.T, user fakeidp.GitHubUser, wantOrgs bool) (*fakeidp.GitHub, *GitHub) {
	t.Helper()
	idp := fakeidp.NewGitHub(t, user)
	cfg := GitHubConfig{ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, BaseURL: idp.BaseURL, APIURL: idp.APIURL, WantOrgs: wantOrgs}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return idp, NewGitHub(cfg, nil)
}

func TestGitHubLogin(t *testing.T) {
	idp, g := newGitHubPair(t, octocat, false)
	if g.Name() != "github" {
		t.Errorf("Name() = %q", g.Name())
	}
	p := newLoginParams()
	u, _ := url.Parse(g.AuthCodeURL(p.state, p.verifier, p.nonce, callbackURL))
	q := u.Query()
	if u.Path != "/login/oauth/authorize" || q.Get("scope") != "read:user user:email" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Has("nonce") {
		t.Errorf("auth URL = %s", u)
	}

	code := authorize(t, g, p)
	id, err := g.Exchange(t.Context(), code, p.verifier, p.nonce, callbackURL)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	want := Identity{Subject: "583231", Username: "Octocat", Email: "octocat@example.com", Name: "The Octocat", Picture: octocat.AvatarURL}
	if !identityEqual(*id, want) {
		t.Errorf("identity = %+v, want %+v", *id, want)
	}
	if id.Orgs != nil {
		t.Errorf("Orgs = %q without WantOrgs", id.Orgs)
	}
	if n := idp.Requests(fakeidp.GitHubAPIPrefix + "/user/orgs"); n != 0 {
		t.Errorf("/user/orgs fetched %d times without WantOrgs", n)
	}

	// Codes are single-use; GitHub says bad_verification_code.
	_, err = g.Exchange(t.Context(), code, p.verifier, p.nonce, callbackURL)
	if !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("replayed code: err = %v, want ErrInvalidGrant", err)
	}
	wantErr(t, err, "The code passed is incorrect or expired.")
}

func TestGitHubEmailSelection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		emails []fakeidp.GitHubEmail
		want   string
	}{
		{"primary verified", octocat.Emails, "octocat@example.com"},
		{"unverified primary ignored", []fakeidp.GitHubEmail{
			{Email: "primary@example.com", Primary: true, Verified: false},
			{Email: "verified@example.com", Verified: true},
		}, ""},
		{"no emails", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := octocat
			u.Emails = tc.emails
			_, g := newGitHubPair(t, u, false)
			if id := mustLogin(t, g); id.Email != tc.want {
				t.Errorf("Email = %q, want %q", id.Email, tc.want)
			}
		})
	}
}

func TestGitHubNullName(t *testing.T) {
	u := octocat
	u.Name = ""
	_, g := newGitHubPair(t, u, false)
	if id := mustLogin(t, g); id.Name != "" || id.Username != "Octocat" {
		t.Errorf("identity = %+v", id)
	}
}

func TestGitHubOrgs(t *testing.T) {
	t.Run("scope and case", func(t *testing.T) {
		_, g := newGitHubPair(t, octocat, true)
		u, _ := url.Parse(g.AuthCodeURL("s", "v", "n", callbackURL))
		if got := u.Query().Get("scope"); got != "read:user user:email read:org" {
			t.Errorf("scope = %q", got)
		}
		id := mustLogin(t, g)
		if strings.Join(id.Orgs, ",") != "GitHub,octo-org" {
			t.Errorf("Orgs = %q, want GitHub's spelling", id.Orgs)
		}
	})
	t.Run("pagination", func(t *testing.T) {
		u := octocat
		u.Orgs = nil
		for i := range 250 {
			u.Orgs = append(u.Orgs, fmt.Sprintf("org-%03d", i))
		}
		idp, g := newGitHubPair(t, u, true)
		id := mustLogin(t, g)
		if len(id.Orgs) != 250 || id.Orgs[0] != "org-000" || id.Orgs[249] != "org-249" {
			t.Errorf("got %d orgs: %q ... ", len(id.Orgs), id.Orgs[:min(3, len(id.Orgs))])
		}
		if n := idp.Requests(fakeidp.GitHubAPIPrefix + "/user/orgs"); n != 3 {
			t.Errorf("/user/orgs fetched %d times, want 3 pages of 100", n)
		}
	})
	t.Run("none", func(t *testing.T) {
		u := octocat
		u.Orgs = nil
		_, g := newGitHubPair(t, u, true)
		if id := mustLogin(t, g); id.Orgs == nil || len(id.Orgs) != 0 {
			t.Errorf("Orgs = %#v, want empty and non-nil", id.Orgs)
		}
	})
	t.Run("endless pagination", func(t *testing.T) {
		idp, g := newGitHubPair(t, octocat, true)
		idp.Handle(fakeidp.GitHubAPIPrefix+"/user/orgs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", fmt.Sprintf(`<%s/user/orgs?page=2>; rel="next"`, idp.APIURL))
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`[{"login":"loop"}]`))
		}))
		_, err := login(t, g)
		wantErr(t, err, "more than 20 pages")
	})
	t.Run("pagination to another host", func(t *testing.T) {
		idp, g := newGitHubPair(t, octocat, true)
		idp.Handle(fakeidp.GitHubAPIPrefix+"/user/orgs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", `<https://evil.example.com/user/orgs?page=2>; rel="next"`)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`[{"login":"a"}]`))
		}))
		_, err := login(t, g)
		wantErr(t, err, "refusing to follow pagination link https://evil.example.com/user/orgs")
	})
	t.Run("failure", func(t *testing.T) {
		idp, g := newGitHubPair(t, octocat, true)
		idp.Handle(fakeidp.GitHubAPIPrefix+"/user/orgs", jsonStatus(http.StatusForbidden, `{"message":"API rate limit exceeded for user ID 583231."}`))
		_, err := login(t, g)
		wantErr(t, err, "403", "API rate limit exceeded")
	})
}

func jsonStatus(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
}

func TestGitHubTokenErrors(t *testing.T) {
	t.Run("wrong verifier", func(t *testing.T) {
		_, g := newGitHubPair(t, octocat, false)
		p := newLoginParams()
		code := authorize(t, g, p)
		_, err := g.Exchange(t.Context(), code, oauthVerifier(), p.nonce, callbackURL)
		if !errors.Is(err, ErrInvalidGrant) {
			t.Fatalf("err = %v, want ErrInvalidGrant", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		idp := fakeidp.NewGitHub(t, octocat)
		g := NewGitHub(GitHubConfig{ClientID: idp.ClientID, ClientSecret: "nope", BaseURL: idp.BaseURL, APIURL: idp.APIURL}, nil)
		_, err := login(t, g)
		wantErr(t, err, "incorrect_client_credentials")
		if errors.Is(err, ErrInvalidGrant) {
			t.Error("a client credential failure is not invalid_grant")
		}
	})
	t.Run("redirect URI mismatch", func(t *testing.T) {
		_, g := newGitHubPair(t, octocat, false)
		p := newLoginParams()
		code := authorize(t, g, p)
		_, err := g.Exchange(t.Context(), code, p.verifier, p.nonce, callbackURL+"/x")
		wantErr(t, err, "redirect_uri_mismatch")
	})
	t.Run("missing arguments", func(t *testing.T) {
		_, g := newGitHubPair(t, octocat, false)
		_, err := g.Exchange(t.Context(), "code", "", "", callbackURL)
		wantErr(t, err, "no PKCE verifier")
		_, err = g.Exchange(t.Context(), "", "v", "", callbackURL)
		wantErr(t, err, "no authorization code")
	})
	t.Run("no access token", func(t *testing.T) {
		idp, g := newGitHubPair(t, octocat, false)
		idp.Handle("/login/oauth/access_token", jsonStatus(http.StatusOK, `{"token_type":"bearer"}`))
		_, err := login(t, g)
		wantErr(t, err, "no access_token")
	})
	t.Run("not bearer", func(t *testing.T) {
		idp, g := newGitHubPair(t, octocat, false)
		idp.Handle("/login/oauth/access_token", jsonStatus(http.StatusOK, `{"access_token":"gho_x","token_type":"mac"}`))
		_, err := login(t, g)
		wantErr(t, err, `token_type "mac"`)
	})
}

func oauthVerifier() string { return newLoginParams().verifier }

func TestGitHubProviderFailures(t *testing.T) {
	api := fakeidp.GitHubAPIPrefix
	for _, tc := range []struct {
		name, path string
		h          http.Handler
		want       []string
	}{
		{"token garbage", "/login/oauth/access_token", garbage, []string{"/login/oauth/access_token", "invalid JSON"}},
		{"token huge", "/login/oauth/access_token", huge, []string{"larger than"}},
		{"user garbage", api + "/user", garbage, []string{"/user", "invalid JSON"}},
		{"user huge", api + "/user", huge, []string{"/user", "larger than"}},
		{"user 401", api + "/user", jsonStatus(http.StatusUnauthorized, `{"message":"Bad credentials"}`), []string{"401", "Bad credentials"}},
		{"user without id", api + "/user", jsonStatus(http.StatusOK, `{"login":"x"}`), []string{"no id or login"}},
		{"user id as string", api + "/user", jsonStatus(http.StatusOK, `{"login":"x","id":"1"}`), []string{"invalid JSON"}},
		{"emails garbage", api + "/user/emails", garbage, []string{"/user/emails"}},
		{"emails 500", api + "/user/emails", jsonStatus(http.StatusInternalServerError, `{}`), []string{"500"}},
		{"orgs garbage", api + "/user/orgs", garbage, []string{"/user/orgs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idp, g := newGitHubPair(t, octocat, true)
			idp.Handle(tc.path, tc.h)
			_, err := login(t, g)
			wantErr(t, err, tc.want...)
			if strings.Contains(err.Error(), "gho_") {
				t.Errorf("error leaks the access token: %v", err)
			}
		})
	}

	t.Run("emails forbidden", func(t *testing.T) {
		// A GitHub app without the email permission: log in without email.
		idp, g := newGitHubPair(t, octocat, false)
		idp.Handle(api+"/user/emails", jsonStatus(http.StatusForbidden, `{"message":"Resource not accessible by integration"}`))
		id := mustLogin(t, g)
		if id.Email != "" || id.Subject != "583231" {
			t.Errorf("identity = %+v", id)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		idp, g := newGitHubPair(t, octocat, false)
		idp.Handle(api+"/user", stall)
		p := newLoginParams()
		code := authorize(t, g, p)
		_, err := g.Exchange(shortCtx(t), code, p.verifier, p.nonce, callbackURL)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline error", err)
		}
	})
}

func TestGitHubConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg     GitHubConfig
		wantErr string
	}{
		{GitHubConfig{ClientID: "id", ClientSecret: "s"}, ""},
		{GitHubConfig{ClientID: "id", ClientSecret: "s", BaseURL: "https://ghe.example.com/", APIURL: "https://ghe.example.com/api/v3"}, ""},
		{GitHubConfig{ClientSecret: "s"}, "client_id"},
		{GitHubConfig{ClientID: "id"}, "client_secret"},
		{GitHubConfig{ClientID: "id", ClientSecret: "s", BaseURL: "http://ghe.example.com"}, "base_url"},
		{GitHubConfig{ClientID: "id", ClientSecret: "s", APIURL: "http://ghe.example.com/api/v3"}, "api_url"},
		{GitHubConfig{ClientID: "id", ClientSecret: "s", APIURL: "https://ghe.example.com/api/v3?x=1"}, "query"},
	} {
		err := tc.cfg.Validate()
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.cfg, err)
			}
			continue
		}
		wantErr(t, err, tc.wantErr)
	}

	// Defaults, and trailing slashes do not produce double slashes.
	g := NewGitHub(GitHubConfig{ClientID: "id", ClientSecret: "s"}, nil)
	if u := g.AuthCodeURL("s", "v", "", callbackURL); !strings.HasPrefix(u, "https://github.com/login/oauth/authorize?") {
		t.Errorf("auth URL = %s", u)
	}
	if g.cfg.APIURL != GitHubAPIURL {
		t.Errorf("APIURL = %s", g.cfg.APIURL)
	}
	ghe := NewGitHub(GitHubConfig{ClientID: "id", ClientSecret: "s", BaseURL: "https://ghe.example.com/"}, nil)
	if u := ghe.AuthCodeURL("s", "v", "", callbackURL); !strings.HasPrefix(u, "https://ghe.example.com/login/oauth/authorize?") {
		t.Errorf("auth URL = %s", u)
	}
}

func TestLinkNext(t *testing.T) {
	for header, want := range map[string]string{
		"": "",
		`<https://api.github.com/user/orgs?page=2>; rel="next", <https://api.github.com/user/orgs?page=5>; rel="last"`:  "https://api.github.com/user/orgs?page=2",
		`<https://api.github.com/user/orgs?page=1>; rel="prev", <https://api.github.com/user/orgs?page=3>; rel="next"`:  "https://api.github.com/user/orgs?page=3",
		`<https://api.github.com/user/orgs?page=1>; rel="first", <https://api.github.com/user/orgs?page=1>; rel="prev"`: "",
		`<https://x/a>; rel="prev next"`: "https://x/a",
		`<https://x/a>; REL=next`:        "https://x/a",
		`https://x/a; rel="next"`:        "",
		`<https://x/a>`:                  "",
	} {
		if got := linkNext(header); got != want {
			t.Errorf("linkNext(%q) = %q, want %q", header, got, want)
		}
	}
}

// A GitHub app with expiring user tokens: the login returns the token
// with its refresh token and expiry; Refresh rotates both, the old refresh
// token is refused as invalid_grant; Revoke deletes the token, and its
// refresh token stops working with it.
func TestGitHubTokenRefreshAndRevoke(t *testing.T) {
	idp := fakeidp.NewGitHub(t, octocat)
	idp.ExpireTokens(8 * time.Hour)
	cfg := GitHubConfig{ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, BaseURL: idp.BaseURL, APIURL: idp.APIURL, Scopes: []string{"repo", "user:email"}}
	g := NewGitHub(cfg, nil)
	p := newLoginParams()
	u, _ := url.Parse(g.AuthCodeURL(p.state, p.verifier, p.nonce, callbackURL))
	if got := u.Query().Get("scope"); got != "read:user user:email repo" {
		t.Errorf("scope = %q, want the login's and the extra ones, once each", got)
	}
	id := mustLogin(t, g)
	tok := id.Token
	issued := idp.Issued()
	if tok == nil || len(issued) != 1 || tok.AccessToken != issued[0].AccessToken || tok.RefreshToken != issued[0].RefreshToken {
		t.Fatalf("login token %+v, issued %+v", tok, issued)
	}
	if d := time.Until(tok.Expiry); d < 7*time.Hour || d > 8*time.Hour {
		t.Errorf("expiry in %s, want 8h", d)
	}
	if !slices.Equal(tok.Scopes, []string{"read:user", "user:email", "repo"}) {
		t.Errorf("scopes %q", tok.Scopes)
	}

	fresh, err := g.Refresh(t.Context(), tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || !idp.Valid(fresh.AccessToken) {
		t.Errorf("refresh did not rotate: %+v", fresh)
	}
	_, err = g.Refresh(t.Context(), tok.RefreshToken)
	if !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("refresh with a used refresh token: %v, want ErrInvalidGrant", err)
	}
	if strings.Contains(fmt.Sprint(err), tok.RefreshToken) {
		t.Error("the error names the refresh token")
	}

	if err := g.Revoke(t.Context(), fresh); err != nil {
		t.Fatal(err)
	}
	if n := idp.Requests(idp.RevocationPath()); n != 1 {
		t.Errorf("%d revocation requests", n)
	}
	if idp.Valid(fresh.AccessToken) {
		t.Error("token still valid after it was deleted")
	}
	if _, err := g.Refresh(t.Context(), fresh.RefreshToken); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("refresh after revocation: %v, want ErrInvalidGrant", err)
	}
	// Revoking again finds it gone: not an error.
	if err := g.Revoke(t.Context(), fresh); err != nil {
		t.Errorf("second revocation: %v", err)
	}
}
