package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
)

// maxInspectedBody bounds the JSON-RPC body the gate reads to find tool
// calls; larger requests are refused when tool scopes are configured.
const maxInspectedBody = 4 << 20

// errBodyTooLarge and errBadJSONRPC classify bodies the gate refuses.
var (
	errBodyTooLarge = errors.New("request body too large to inspect")
	errBadJSONRPC   = errors.New("request body is not JSON-RPC")
	errHeaderBody   = errors.New("the Mcp-Method or Mcp-Name header disagrees with the body")
)

// jsonrpcMessage is the part of a JSON-RPC request the gate looks at.
type jsonrpcMessage struct {
	Method string `json:"method"`
	Params struct {
		Name string `json:"name"`
	} `json:"params"`
}

// toolScopesNeeded reads a POST body (restoring it for the backend) and
// returns the scopes its tools/call requests need. Batches are read as a
// whole: every call in them counts. The 2026-07-28 Mcp-Method and Mcp-Name
// headers, when present, must agree with the body; they are never trusted
// alone.
func (s *Site) toolScopesNeeded(r *http.Request) ([]string, error) {
	if len(s.ToolScopes) == 0 || r.Method != http.MethodPost || r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxInspectedBody+1))
	if err != nil {
		return nil, errBadJSONRPC
	}
	// The original body stays open: the server drains or drops the rest.
	if len(body) > maxInspectedBody {
		return nil, errBodyTooLarge
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))

	var msgs []jsonrpcMessage
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		err = json.Unmarshal(body, &msgs)
	} else {
		var one jsonrpcMessage
		err = json.Unmarshal(body, &one)
		msgs = []jsonrpcMessage{one}
	}
	if err != nil {
		return nil, errBadJSONRPC
	}
	if m := r.Header.Get("Mcp-Method"); m != "" {
		if len(msgs) != 1 || msgs[0].Method != m {
			return nil, errHeaderBody
		}
	}
	if n := r.Header.Get("Mcp-Name"); n != "" {
		if len(msgs) != 1 || msgs[0].Params.Name != n {
			return nil, errHeaderBody
		}
	}
	var need []string
	for _, m := range msgs {
		if m.Method != "tools/call" {
			continue
		}
		for _, sc := range s.ToolScopes[m.Params.Name] {
			if !slices.Contains(need, sc) {
				need = append(need, sc)
			}
		}
	}
	return need, nil
}
