package gate

import (
	"errors"
	"mime"
	"net/http"
	"strings"
	"sync"
)

// maxInspectedBody bounds the JSON-RPC body the gate reads to find tool
// calls; larger requests are refused when tool scopes are configured.
const maxInspectedBody = 4 << 20

// errBodyTooLarge, errBadJSONRPC and the others classify bodies the gate
// refuses.
var (
	errBodyTooLarge     = errors.New("request body too large to inspect")
	errBadJSONRPC       = errors.New("request body is not JSON-RPC")
	errAmbiguousJSONRPC = errors.New("a JSON-RPC message repeats jsonrpc, method, params or the name, uri or taskId of its params, or spells one in another letter case")
	errHeaderBody       = errors.New("the Mcp-Method or Mcp-Name header disagrees with the body")
	errJSONTooDeep      = errors.New("request body nests JSON more than 64 levels deep")
	errUnsupportedBody  = errors.New("a JSON-RPC body must be sent once as Content-Type application/json, charset utf-8 if any, without Content-Encoding")
)

// maxJSONNesting bounds how deep the gate follows nested arrays and
// objects while skipping values it does not judge: rpcScanner keeps a bit
// per level, in a uint64. JSON-RPC messages nest a few levels.
const maxJSONNesting = 64

// toolScopesNeeded reads a POST body (restoring it for the backend) and
// returns the scopes its tools/call requests need; the slice is the
// configuration's own when one call needs them, not to be modified.
// Batches are read as a whole: every call in them counts. The 2026-07-28
// Mcp-Method and Mcp-Name headers, when present, must agree with the body;
// they are never trusted alone.
func (g *Gate) toolScopesNeeded(r *http.Request) ([]string, error) {
	// Methods are case-sensitive, but a backend that is not may take "post"
	// for POST.
	if len(g.cfg.ToolScopes) == 0 || !strings.EqualFold(r.Method, http.MethodPost) || r.Body == nil {
		return nil, nil
	}
	if !inspectableBody(r.Header) {
		return nil, errUnsupportedBody
	}
	body, err := readBody(r.Body)
	if err != nil {
		return nil, err
	}
	// The original body stays open: the server drains or drops the rest.
	r.Body = body
	r.ContentLength = int64(len(body.buf))

	s := scanners.Get().(*rpcScanner)
	defer s.release()
	msgs, err := s.inspectJSONRPC(body.buf)
	if err != nil {
		return nil, err
	}
	if !headerAgrees(r.Header["Mcp-Method"], msgs, func(m *rpcMessage) []byte { return m.Method }) ||
		!headerAgrees(r.Header["Mcp-Name"], msgs, (*rpcMessage).mcpName) {
		return nil, errHeaderBody
	}
	var need []string
	for i := range msgs {
		if string(msgs[i].Method) != "tools/call" {
			continue
		}
		scopes := g.cfg.ToolScopes[string(msgs[i].Name)]
		if need == nil {
			need = scopes
			continue
		}
		need = Union(need, scopes)
	}
	return need, nil
}

// scanners holds rpcScanners between requests.
var scanners = sync.Pool{New: func() any { return new(rpcScanner) }}

// release returns s to scanners, without its references to the body and
// without buffers a large body grew.
func (s *rpcScanner) release() {
	clear(s.msgs)
	s.body, s.msgs = nil, s.msgs[:0]
	if cap(s.msgs) > 64 {
		s.msgs = nil
	}
	if cap(s.key) > 1024 {
		s.key = nil
	}
	scanners.Put(s)
}

// inspectableBody reports whether the body's headers tell every backend
// to read it as the UTF-8 JSON the gate reads. Backends decode by the
// declared charset (Express's json parser takes any "utf-*", UTF-7
// included, in which "+AGQ-elete_todo" reads as delete_todo) and inflate a
// declared Content-Encoding, so a body the gate could not read the same
// way is refused rather than judged by a different reading: one
// Content-Type, application/json in any case, with no parameter but a
// charset of utf-8, and no content coding but identity.
func inspectableBody(h http.Header) bool {
	for _, coding := range h["Content-Encoding"] {
		if !strings.EqualFold(strings.TrimSpace(coding), "identity") {
			return false
		}
	}
	types := h["Content-Type"]
	// "*" marks RFC 2231 parameters (charset*=utf-8''utf-7), which most
	// backends' parsers do not decode as Go's does.
	if len(types) != 1 || strings.Contains(types[0], "*") {
		return false
	}
	// What clients send, known without parsing.
	if strings.EqualFold(types[0], "application/json") || strings.EqualFold(types[0], "application/json; charset=utf-8") {
		return true
	}
	mediaType, params, err := mime.ParseMediaType(types[0])
	if err != nil || mediaType != "application/json" {
		return false
	}
	for name, value := range params {
		if name != "charset" || !strings.EqualFold(value, "utf-8") {
			return false
		}
	}
	return true
}

// headerAgrees reports whether an Mcp-Method or Mcp-Name header, if sent,
// is sent once, with a single message, and names what the message does.
func headerAgrees(values []string, msgs []rpcMessage, field func(*rpcMessage) []byte) bool {
	return len(values) == 0 || len(values) == 1 && len(msgs) == 1 && string(field(&msgs[0])) == values[0]
}
