package oauthtest

import "net/http"

// MCPInitialize is the first message an MCP client sends: an initialize
// request.
const MCPInitialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"oauthtest","version":"0"}}}`

// MCPHeader is the header of an MCP message posted over Streamable HTTP
// with an access token.
func MCPHeader(token string) http.Header {
	h := Bearer(token)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	return h
}
