package demomcp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
)

// headerTransport adds fixed headers to every outgoing request and, if host
// is set, overrides the Host header.
type headerTransport struct {
	header http.Header
	host   string
}

func (t headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, vs := range t.header {
		req.Header[k] = vs
	}
	if t.host != "" {
		req.Host = t.host
	}
	return http.DefaultTransport.RoundTrip(req)
}

func connect(t *testing.T, url string, header http.Header) *mcp.ClientSession {
	t.Helper()
	return connectVia(t, url, headerTransport{header: header})
}

func connectVia(t *testing.T, url string, rt http.RoundTripper) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "demomcp-test", Version: "0"}, nil)
	transport := &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: rt},
	}
	cs, err := client.Connect(t.Context(), transport, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func callTool(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("CallTool(%s): %v", name, err)
	}
	if res.IsError {
		t.Fatalf("CallTool(%s) returned tool error: %v", name, textOf(t, res))
	}
	return res
}

func textOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("got %d content blocks, want 1", len(res.Content))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content is %T, want *mcp.TextContent", res.Content[0])
	}
	return tc.Text
}

// decodeStructured converts the client-side StructuredContent (decoded
// generically from JSON) into v.
func decodeStructured(t *testing.T, res *mcp.CallToolResult, v any) {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding structured content %s: %v", b, err)
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(demomcp.Handler())
	t.Cleanup(srv.Close)

	identityHeader := http.Header{
		demomcp.HeaderUser:   {"alice"},
		demomcp.HeaderEmail:  {"alice@example.com"},
		demomcp.HeaderClient: {"client-123"},
		demomcp.HeaderScopes: {"mcp:read mcp:write"},
	}
	withAuth := identityHeader.Clone()
	withAuth.Set("Authorization", "Bearer secret-token")

	cs := connect(t, srv.URL, withAuth)

	if got := cs.InitializeResult().ServerInfo.Name; got != demomcp.ServerName {
		t.Errorf("server name = %q, want %q", got, demomcp.ServerName)
	}

	t.Run("ListTools", func(t *testing.T) {
		var names []string
		for tool, err := range cs.Tools(t.Context(), nil) {
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, tool.Name)
		}
		for _, want := range []string{"whoami", "echo", "add"} {
			if !slices.Contains(names, want) {
				t.Errorf("tool %q missing from %v", want, names)
			}
		}
	})

	t.Run("echo", func(t *testing.T) {
		res := callTool(t, cs, "echo", map[string]any{"text": "hello, MCP"})
		if got := textOf(t, res); got != "hello, MCP" {
			t.Errorf("echo text = %q, want %q", got, "hello, MCP")
		}
	})

	t.Run("add", func(t *testing.T) {
		res := callTool(t, cs, "add", map[string]any{"a": 2, "b": 40.5})
		if got := textOf(t, res); got != "42.5" {
			t.Errorf("add text = %q, want %q", got, "42.5")
		}
		var out struct{ Sum float64 }
		decodeStructured(t, res, &out)
		if out.Sum != 42.5 {
			t.Errorf("add structured sum = %v, want 42.5", out.Sum)
		}
	})

	t.Run("add rejects missing argument", func(t *testing.T) {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1}})
		if err != nil {
			t.Fatalf("CallTool: %v", err)
		}
		if !res.IsError {
			t.Errorf("add without b: IsError = false, want true")
		}
	})

	t.Run("whoami with Authorization", func(t *testing.T) {
		res := callTool(t, cs, "whoami", nil)
		var got demomcp.Identity
		decodeStructured(t, res, &got)
		want := demomcp.Identity{
			User:                       "alice",
			Email:                      "alice@example.com",
			Client:                     "client-123",
			Scopes:                     "mcp:read mcp:write",
			AuthorizationHeaderPresent: true,
		}
		if got != want {
			t.Errorf("whoami = %+v, want %+v", got, want)
		}
		// The text content carries the same JSON.
		var fromText demomcp.Identity
		if err := json.Unmarshal([]byte(textOf(t, res)), &fromText); err != nil || fromText != want {
			t.Errorf("whoami text = %q (err %v), want JSON of %+v", textOf(t, res), err, want)
		}
	})

	t.Run("whoami without Authorization", func(t *testing.T) {
		cs := connect(t, srv.URL, identityHeader)
		res := callTool(t, cs, "whoami", nil)
		var got demomcp.Identity
		decodeStructured(t, res, &got)
		if got.User != "alice" || got.AuthorizationHeaderPresent {
			t.Errorf("whoami = %+v, want user alice and no Authorization header", got)
		}
	})

	t.Run("whoami without headers", func(t *testing.T) {
		cs := connect(t, srv.URL, nil)
		res := callTool(t, cs, "whoami", nil)
		var got demomcp.Identity
		decodeStructured(t, res, &got)
		if got != (demomcp.Identity{}) {
			t.Errorf("whoami = %+v, want zero Identity", got)
		}
	})
}

// TestHandlerForeignHost checks that requests forwarded by a reverse proxy
// with a public Host header are not rejected by the SDK's DNS-rebinding
// protection.
func TestHandlerForeignHost(t *testing.T) {
	srv := httptest.NewServer(demomcp.Handler())
	t.Cleanup(srv.Close)

	cs := connectVia(t, srv.URL, headerTransport{host: "mcp.example.com"})
	res := callTool(t, cs, "echo", map[string]any{"text": "proxied"})
	if got := textOf(t, res); got != "proxied" {
		t.Errorf("echo text = %q, want %q", got, "proxied")
	}
}
