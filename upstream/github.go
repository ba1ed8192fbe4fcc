package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// GitHub defaults (github.com). GitHub Enterprise Server uses
// https://HOST for BaseURL and https://HOST/api/v3 for APIURL.
const (
	GitHubBaseURL = "https://github.com"
	GitHubAPIURL  = "https://api.github.com"
)

// gitHubAPIVersion pins the REST API version whose response shapes this
// code expects.
const gitHubAPIVersion = "2022-11-28"

// maxOrgPages bounds /user/orgs pagination (100 per page).
const maxOrgPages = 20

// GitHubConfig configures login with GitHub or GitHub Enterprise Server,
// through an OAuth app or a GitHub app's user authorization.
type GitHubConfig struct {
	ClientID     string
	ClientSecret string
	// BaseURL is where users log in; GitHubBaseURL if empty.
	BaseURL string
	// APIURL is the REST API root; GitHubAPIURL if empty.
	APIURL string
	// WantOrgs requests the read:org scope and fills Identity.Orgs.
	WantOrgs bool
	// Scopes are requested besides those the login needs, for backends
	// that use the user's token, such as repo.
	Scopes []string
}

// Validate reports configuration errors that NewGitHub cannot: missing
// credentials and URLs that are not https (plain http is allowed for
// loopback hosts only).
func (c GitHubConfig) Validate() error {
	if c.ClientID == "" {
		return errors.New("github: client_id is required")
	}
	if c.ClientSecret == "" {
		return errors.New("github: client_secret is required")
	}
	c = c.withDefaults()
	for _, u := range []struct{ name, url string }{{"base_url", c.BaseURL}, {"api_url", c.APIURL}} {
		parsed, err := checkEndpoint(u.name, u.url)
		if err != nil {
			return fmt.Errorf("github: %w", err)
		}
		if parsed.RawQuery != "" {
			return fmt.Errorf("github: %s %q must not contain a query", u.name, u.url)
		}
	}
	return nil
}

func (c GitHubConfig) withDefaults() GitHubConfig {
	if c.BaseURL == "" {
		c.BaseURL = GitHubBaseURL
	}
	if c.APIURL == "" {
		c.APIURL = GitHubAPIURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	return c
}

// GitHub logs users in with GitHub. GitHub is not an OpenID Connect
// provider: the user is identified through the REST API with the access
// token. Identity.Subject is the numeric user id
// (logins can be renamed and reused), Username the login, Email the
// primary email only if verified, and Orgs (with WantOrgs) the logins of
// the user's organizations in GitHub's spelling. GitHub logins are
// case-insensitive, so compare them with strings.EqualFold.
//
// With an OAuth app, organizations that restrict third-party app access
// and have not approved the app are missing from Orgs.
type GitHub struct {
	cfg    GitHubConfig
	oauth  oauth2.Config
	client *http.Client
}

// NewGitHub returns a GitHub provider. Call cfg.Validate first; NewGitHub
// itself does no I/O and cannot fail. httpClient is used for all requests
// to GitHub; nil means a client with a 30-second timeout.
func NewGitHub(cfg GitHubConfig, httpClient *http.Client) *GitHub {
	cfg = cfg.withDefaults()
	scopes := cfg.RequestedScopes()
	return &GitHub{
		cfg: cfg,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint: oauth2.Endpoint{
				AuthURL:   cfg.BaseURL + "/login/oauth/authorize",
				TokenURL:  cfg.BaseURL + "/login/oauth/access_token",
				AuthStyle: oauth2.AuthStyleInParams,
			},
			Scopes: scopes,
		},
		client: providerClient(httpClient),
	}
}

// Name implements Redirector.
func (g *GitHub) Name() string { return "github" }

// AuthCodeURL implements Redirector. GitHub supports PKCE (S256); it has
// no ID token, so nonce is not sent.
func (g *GitHub) AuthCodeURL(state, verifier, nonce, redirectURL string) string {
	cfg := g.oauth
	cfg.RedirectURL = redirectURL
	return cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Exchange implements Redirector. nonce is ignored: GitHub issues no ID
// token, and the PKCE verifier already binds the code to this login.
func (g *GitHub) Exchange(ctx context.Context, code, verifier, nonce, redirectURL string) (*Identity, error) {
	switch {
	case code == "":
		return nil, errors.New("github: no authorization code")
	case verifier == "":
		return nil, errors.New("github: no PKCE verifier")
	}
	ctx, cancel := withExchangeTimeout(ctx)
	defer cancel()

	tok, err := g.redeem(ctx, code, verifier, redirectURL)
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	token := tok.AccessToken

	var user struct {
		ID        int64   `json:"id"`
		Login     string  `json:"login"`
		Name      *string `json:"name"`
		AvatarURL string  `json:"avatar_url"`
	}
	if _, err := g.api(ctx, token, g.cfg.APIURL+"/user", &user); err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	if user.ID <= 0 || user.Login == "" {
		return nil, fmt.Errorf("github: %s/user returned no id or login", g.cfg.APIURL)
	}
	id := &Identity{
		Subject:  strconv.FormatInt(user.ID, 10),
		Username: user.Login,
		Picture:  user.AvatarURL,
		Token:    tok,
	}
	if user.Name != nil {
		id.Name = *user.Name
	}

	if id.Email, err = g.primaryEmail(ctx, token); err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	if g.cfg.WantOrgs {
		if id.Orgs, err = g.orgs(ctx, token); err != nil {
			return nil, fmt.Errorf("github: %w", err)
		}
	}
	return id, nil
}

// redeem exchanges the code for the user's token.
func (g *GitHub) redeem(ctx context.Context, code, verifier, redirectURL string) (*Token, error) {
	form := url.Values{
		"code":          {code},
		"code_verifier": {verifier},
	}
	if redirectURL != "" {
		form.Set("redirect_uri", redirectURL)
	}
	return g.tokenRequest(ctx, form)
}

// Refresh implements TokenKeeper. Only GitHub apps with expiring user
// tokens issue refresh tokens.
func (g *GitHub) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	ctx, cancel := withExchangeTimeout(ctx)
	defer cancel()
	tok, err := g.tokenRequest(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	if err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = refreshToken
	}
	return tok, nil
}

// Revoke implements TokenKeeper: it deletes the token, and not the user's
// whole authorization of the app, which other grants of the user still
// use. https://docs.github.com/rest/apps/oauth-applications#delete-an-app-token
func (g *GitHub) Revoke(ctx context.Context, tok *Token) error {
	ctx, cancel := withExchangeTimeout(ctx)
	defer cancel()
	body, err := json.Marshal(map[string]string{"access_token": tok.AccessToken})
	if err != nil {
		return err
	}
	endpoint := g.cfg.APIURL + "/applications/" + url.PathEscape(g.cfg.ClientID) + "/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("github: revocation request %s: %v", endpoint, err)
	}
	req.SetBasicAuth(g.cfg.ClientID, g.cfg.ClientSecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", gitHubAPIVersion)
	// 204 when revoked; 404 when the token is gone already.
	if err := expectNoContent(g.client, req); err != nil && !isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("github: %w", err)
	}
	return nil
}

// tokenRequest posts form, with the client's credentials, to the token
// endpoint and returns the token. GitHub answers errors with 200 and an
// "error" member, so success is judged by the body.
func (g *GitHub) tokenRequest(ctx context.Context, form url.Values) (*Token, error) {
	form.Set("client_id", g.cfg.ClientID)
	form.Set("client_secret", g.cfg.ClientSecret)
	tokenURL := g.oauth.Endpoint.TokenURL
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("token request to %s: %v", tokenURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// Without it GitHub answers form-encoded.
	req.Header.Set("Accept", "application/json")

	var resp struct {
		AccessToken      string `json:"access_token"`
		TokenType        string `json:"token_type"`
		RefreshToken     string `json:"refresh_token"`
		ExpiresIn        int64  `json:"expires_in"`
		Scope            string `json:"scope"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if _, err := getJSON(g.client, req, &resp); err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	switch {
	case resp.Error == "bad_verification_code" || resp.Error == "bad_refresh_token" || resp.Error == "invalid_grant":
		return nil, fmt.Errorf("token endpoint %s: %w: %s", tokenURL, ErrInvalidGrant, sanitize(resp.ErrorDescription))
	case resp.Error != "":
		msg := fmt.Sprintf("token endpoint %s returned error %q", tokenURL, sanitize(resp.Error))
		if resp.ErrorDescription != "" {
			msg += ": " + sanitize(resp.ErrorDescription)
		}
		return nil, errors.New(msg)
	case resp.AccessToken == "":
		return nil, fmt.Errorf("token endpoint %s returned no access_token", tokenURL)
	case resp.TokenType != "" && !strings.EqualFold(resp.TokenType, "bearer"):
		return nil, fmt.Errorf("token endpoint %s returned token_type %q, want bearer", tokenURL, sanitize(resp.TokenType))
	}
	tok := &Token{AccessToken: resp.AccessToken, RefreshToken: resp.RefreshToken, Scopes: splitScopes(resp.Scope)}
	if resp.ExpiresIn > 0 {
		tok.Expiry = time.Now().Add(time.Duration(resp.ExpiresIn) * time.Second)
	}
	return tok, nil
}

// primaryEmail returns the user's primary email if it is verified, else
// "". A token without access to emails (a GitHub app lacking the "email
// addresses" permission gets 403 or 404) also yields "": the login still
// succeeds, just without an email.
func (g *GitHub) primaryEmail(ctx context.Context, token string) (string, error) {
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if _, err := g.api(ctx, token, g.cfg.APIURL+"/user/emails?per_page=100", &emails); err != nil {
		if isStatus(err, http.StatusForbidden, http.StatusNotFound) {
			return "", nil
		}
		return "", err
	}
	for _, e := range emails {
		// Only the primary address: it is the one the user chose to be
		// known by, and an unverified one proves nothing.
		if e.Primary && e.Verified {
			return e.Email, nil
		}
	}
	return "", nil
}

// orgs returns the logins of the user's organizations, following
// pagination up to maxOrgPages pages.
func (g *GitHub) orgs(ctx context.Context, token string) ([]string, error) {
	orgs := []string{}
	next := g.cfg.APIURL + "/user/orgs?per_page=100"
	for page := 0; next != ""; page++ {
		if page == maxOrgPages {
			return nil, fmt.Errorf("%s/user/orgs has more than %d pages of organizations", g.cfg.APIURL, maxOrgPages)
		}
		var batch []struct {
			Login string `json:"login"`
		}
		hdr, err := g.api(ctx, token, next, &batch)
		if err != nil {
			return nil, err
		}
		for _, o := range batch {
			if o.Login != "" {
				orgs = append(orgs, o.Login)
			}
		}
		if next, err = g.nextPage(hdr.Get("Link")); err != nil {
			return nil, err
		}
	}
	return orgs, nil
}

// nextPage returns the rel="next" URL of a Link header, or "" if there is
// none. The token is sent to that URL, so it must stay under APIURL.
func (g *GitHub) nextPage(link string) (string, error) {
	next := linkNext(link)
	if next == "" {
		return "", nil
	}
	u, err := url.Parse(next)
	if err != nil {
		return "", fmt.Errorf("pagination link %q is not a URL", sanitize(next))
	}
	api, _ := url.Parse(g.cfg.APIURL)
	if u.Scheme != api.Scheme || u.Host != api.Host ||
		(u.Path != api.Path && !strings.HasPrefix(u.Path, strings.TrimSuffix(api.Path, "/")+"/")) {
		return "", fmt.Errorf("refusing to follow pagination link %s outside %s", redactURL(u), g.cfg.APIURL)
	}
	return u.String(), nil
}

// linkNext extracts the rel="next" target from an RFC 8288 Link header as
// GitHub writes it: `<url>; rel="next", <url>; rel="last"`.
func linkNext(header string) string {
	for part := range strings.SplitSeq(header, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok {
			continue
		}
		target = strings.TrimSpace(target)
		if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
			continue
		}
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if !strings.EqualFold(strings.TrimSpace(k), "rel") {
				continue
			}
			for rel := range strings.FieldsSeq(strings.Trim(strings.TrimSpace(v), `"`)) {
				if strings.EqualFold(rel, "next") {
					return target[1 : len(target)-1]
				}
			}
		}
	}
	return ""
}

// api GETs a REST API URL with the token and decodes the JSON answer.
func (g *GitHub) api(ctx context.Context, token, rawURL string, dst any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("API request %s: %v", rawURL, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", gitHubAPIVersion)
	return getJSON(g.client, req, dst)
}
