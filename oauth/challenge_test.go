package oauth

import "testing"

func TestBearerChallenge(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    BearerChallenge
		want string
	}{
		{
			name: "no credentials: no error",
			c:    BearerChallenge{Realm: "mcp", Description: "no bearer token", ResourceMetadata: "https://rs.test/.well-known/oauth-protected-resource", Scopes: []string{"read", "write"}},
			want: `Bearer realm="mcp", resource_metadata="https://rs.test/.well-known/oauth-protected-resource", scope="read write"`,
		},
		{
			name: "invalid token",
			c:    BearerChallenge{Realm: "mcp", Code: InvalidToken, Description: "token is malformed", ResourceMetadata: "https://rs.test/m"},
			want: `Bearer realm="mcp", error="invalid_token", error_description="token is malformed", resource_metadata="https://rs.test/m"`,
		},
		{
			name: "error without description",
			c:    BearerChallenge{Realm: "https://as.test", Code: InvalidToken},
			want: `Bearer realm="https://as.test", error="invalid_token"`,
		},
		{
			name: "insufficient scope",
			c:    BearerChallenge{Realm: "r", Code: InsufficientScope, Scopes: []string{"openid"}},
			want: `Bearer realm="r", error="insufficient_scope", scope="openid"`,
		},
		{
			name: "bare",
			c:    BearerChallenge{Realm: "r"},
			want: `Bearer realm="r"`,
		},
		{
			name: "quoted-string safety",
			c:    BearerChallenge{Realm: "a\"b\\c\x7fd\x00é", Code: InvalidRequest, Description: "bad \"header\"\r\n, error=\"x\"", Scopes: []string{`s"`}},
			want: `Bearer realm="abcd", error="invalid_request", error_description="bad header, error=x", scope="s"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.String(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestBasicChallenge(t *testing.T) {
	if got, want := BasicChallenge("https://as.test"), `Basic realm="https://as.test"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := BasicChallenge("x\"\n"), `Basic realm="x"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
