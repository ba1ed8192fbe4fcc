// Package demomcp implements a small MCP server used as the demo backend and
// as the upstream in integration tests. Its whoami tool reports the identity
// headers that caddy-mcp-auth forwards to the backend, which makes it easy to
// check what the proxy passes through.
package demomcp

import (
	"context"
	"net/http"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ServerName is the implementation name the server reports to clients.
const ServerName = "caddy-mcp-auth-demo"

// Request headers reported by the whoami tool.
const (
	HeaderUser   = "X-MCP-User"
	HeaderEmail  = "X-MCP-Email"
	HeaderClient = "X-MCP-Client"
	HeaderScopes = "X-MCP-Scopes"
)

// Identity is the structured output of the whoami tool. Clients receive it as
// the JSON object in CallToolResult.StructuredContent (and, serialized, as the
// result's text content).
type Identity struct {
	User                       string `json:"user" jsonschema:"value of the X-MCP-User request header"`
	Email                      string `json:"email" jsonschema:"value of the X-MCP-Email request header"`
	Client                     string `json:"client" jsonschema:"value of the X-MCP-Client request header"`
	Scopes                     string `json:"scopes" jsonschema:"value of the X-MCP-Scopes request header"`
	AuthorizationHeaderPresent bool   `json:"authorization_header_present" jsonschema:"whether an Authorization header reached the backend"`
}

type echoArgs struct {
	Text string `json:"text" jsonschema:"text to echo back"`
}

type echoResult struct {
	Text string `json:"text"`
}

type addArgs struct {
	A float64 `json:"a" jsonschema:"first addend"`
	B float64 `json:"b" jsonschema:"second addend"`
}

type addResult struct {
	Sum float64 `json:"sum"`
}

// Handler returns a streamable-HTTP MCP server exposing the whoami, echo and
// add tools. Each call returns an independent server with its own sessions.
//
// The SDK's DNS-rebinding protection (which rejects requests received on a
// loopback address whose Host header is not a loopback name) is disabled,
// because this backend is meant to sit behind a reverse proxy that forwards
// the public Host header.
func Handler() http.Handler {
	server := mcp.NewServer(&mcp.Implementation{Name: ServerName, Version: "0.1.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{
		Name:        "whoami",
		Description: "Report the identity headers the proxy forwarded to this backend.",
	}, whoami)
	mcp.AddTool(server, &mcp.Tool{
		Name:        "echo",
		Description: "Return the given text unchanged.",
	}, echo)
	mcp.AddTool(server, &mcp.Tool{
		Name:        "add",
		Description: "Add two numbers.",
	}, add)
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{DisableLocalhostProtection: true})
}

func whoami(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, Identity, error) {
	// The streamable HTTP transport attaches the headers of the HTTP request
	// that carried this JSON-RPC call; other transports leave them nil.
	var h http.Header
	if extra := req.GetExtra(); extra != nil {
		h = extra.Header
	}
	id := Identity{
		User:                       h.Get(HeaderUser),
		Email:                      h.Get(HeaderEmail),
		Client:                     h.Get(HeaderClient),
		Scopes:                     h.Get(HeaderScopes),
		AuthorizationHeaderPresent: len(h.Values("Authorization")) > 0,
	}
	// A nil result lets the SDK fill in the JSON text content.
	return nil, id, nil
}

func echo(_ context.Context, _ *mcp.CallToolRequest, args echoArgs) (*mcp.CallToolResult, echoResult, error) {
	return textResult(args.Text), echoResult(args), nil
}

func add(_ context.Context, _ *mcp.CallToolRequest, args addArgs) (*mcp.CallToolResult, addResult, error) {
	sum := args.A + args.B
	return textResult(strconv.FormatFloat(sum, 'g', -1, 64)), addResult{Sum: sum}, nil
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}
