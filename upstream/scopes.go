package upstream

import "slices"

// scopeWords say, for the consent page, what a provider's scopes let the
// holder of a user's token do: the scopes sites commonly ask for.
var scopeWords = map[string]map[string]string{
	"github": {
		"repo":             "Read and write all your repositories, public and private",
		"public_repo":      "Read and write your public repositories",
		"repo:status":      "Read and write commit statuses of your repositories",
		"read:org":         "Read your organization and team memberships",
		"write:org":        "Read and change your organization and team memberships",
		"read:user":        "Read your profile",
		"user":             "Read and change your profile",
		"user:email":       "Read your email addresses",
		"gist":             "Create and change your gists",
		"notifications":    "Read your notifications",
		"workflow":         "Change your GitHub Actions workflows",
		"read:packages":    "Download your packages",
		"write:packages":   "Upload your packages",
		"read:discussion":  "Read your team discussions",
		"project":          "Read and write your projects",
		"read:project":     "Read your projects",
		"security_events":  "Read and write your code scanning alerts",
		"delete_repo":      "Delete your repositories",
		"admin:repo_hook":  "Manage your repositories' webhooks",
		"admin:org":        "Manage your organizations",
		"read:public_key":  "Read your SSH keys",
		"read:gpg_key":     "Read your GPG keys",
		"codespace":        "Create and manage your codespaces",
		"copilot":          "Use GitHub Copilot as you",
		"read:enterprise":  "Read your enterprise profile",
		"admin:public_key": "Manage your SSH keys",
	},
	"google": {
		"openid":                                "Know who you are",
		"email":                                 "See your email address",
		"profile":                               "See your name and profile picture",
		"https://www.googleapis.com/auth/drive": "See, change and delete all your Google Drive files",
		"https://www.googleapis.com/auth/drive.readonly":        "See and download all your Google Drive files",
		"https://www.googleapis.com/auth/drive.file":            "See and change the Google Drive files you use with this app",
		"https://www.googleapis.com/auth/documents":             "See and change all your Google Docs",
		"https://www.googleapis.com/auth/documents.readonly":    "See all your Google Docs",
		"https://www.googleapis.com/auth/spreadsheets":          "See and change all your Google Sheets",
		"https://www.googleapis.com/auth/spreadsheets.readonly": "See all your Google Sheets",
		"https://www.googleapis.com/auth/calendar":              "See and change all your calendars",
		"https://www.googleapis.com/auth/calendar.readonly":     "See your calendars",
		"https://www.googleapis.com/auth/gmail.readonly":        "Read all your email",
		"https://www.googleapis.com/auth/gmail.send":            "Send email as you",
		"https://www.googleapis.com/auth/gmail.modify":          "Read, send and change your email",
	},
	"oidc": {
		"openid":         "Know who you are",
		"email":          "See your email address",
		"profile":        "See your name and profile",
		"offline_access": "Keep access while you are away",
	},
}

// DescribeScope says in words what scope of the provider ("github",
// "google" or "oidc") allows, or "" when it is not a known one.
func DescribeScope(provider, scope string) string {
	return scopeWords[provider][scope]
}

// RequestedScopes are the scopes a login asks GitHub for.
func (c GitHubConfig) RequestedScopes() []string {
	scopes := []string{"read:user", "user:email"}
	if c.WantOrgs {
		scopes = append(scopes, "read:org")
	}
	for _, s := range c.Scopes {
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return scopes
}

// RequestedScopes are the scopes a login asks Google for.
func (c GoogleConfig) RequestedScopes() []string {
	return c.oidcConfig().RequestedScopes()
}

// RequestedScopes are the scopes a login asks the provider for.
func (c OIDCConfig) RequestedScopes() []string {
	scopes := slices.Clone(c.Scopes)
	if len(scopes) == 0 {
		scopes = slices.Clone(DefaultOIDCScopes)
	}
	if !slices.Contains(scopes, "openid") {
		scopes = append([]string{"openid"}, scopes...)
	}
	return scopes
}
