package gate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
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
// objects while skipping values it does not judge: the decoder keeps a
// frame per level, so an unbounded "[[[[..." body costs memory in
// proportion to its size. JSON-RPC messages nest a few levels.
const maxJSONNesting = 64

// rpcRequest is what the gate judges a JSON-RPC message by.
type rpcRequest struct {
	Method string // "method"
	Name   string // "params"."name": the tool of a tools/call
	URI    string // "params"."uri"
	TaskID string // "params"."taskId"
}

// mcpName is the field of m that a 2026-07-28 client mirrors in the
// Mcp-Name header (SEP-2243), "" for methods without one.
func (m rpcRequest) mcpName() string {
	switch m.Method {
	case "tools/call", "prompts/get":
		return m.Name
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return m.URI
	case "tasks/get", "tasks/update", "tasks/cancel":
		return m.TaskID
	}
	return ""
}

// toolScopesNeeded reads a POST body (restoring it for the backend) and
// returns the scopes its tools/call requests need. Batches are read as a
// whole: every call in them counts. The 2026-07-28 Mcp-Method and Mcp-Name
// headers, when present, must agree with the body; they are never trusted
// alone.
func (g *Gate) toolScopesNeeded(r *http.Request) ([]string, error) {
	// Methods are case-sensitive, but a backend that is not may take "post"
	// for POST.
	if len(g.cfg.ToolScopes) == 0 || !strings.EqualFold(r.Method, http.MethodPost) || r.Body == nil {
		return nil, nil
	}
	if !inspectableBody(r.Header) {
		return nil, errUnsupportedBody
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

	msgs, err := inspectJSONRPC(body)
	if err != nil {
		return nil, err
	}
	if !headerAgrees(r.Header.Values("Mcp-Method"), msgs, func(m rpcRequest) string { return m.Method }) ||
		!headerAgrees(r.Header.Values("Mcp-Name"), msgs, rpcRequest.mcpName) {
		return nil, errHeaderBody
	}
	var need []string
	for _, m := range msgs {
		if m.Method != "tools/call" {
			continue
		}
		for _, sc := range g.cfg.ToolScopes[m.Name] {
			if !slices.Contains(need, sc) {
				need = append(need, sc)
			}
		}
	}
	return need, nil
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
	for _, coding := range h.Values("Content-Encoding") {
		if !strings.EqualFold(strings.TrimSpace(coding), "identity") {
			return false
		}
	}
	types := h.Values("Content-Type")
	// "*" marks RFC 2231 parameters (charset*=utf-8''utf-7), which most
	// backends' parsers do not decode as Go's does.
	if len(types) != 1 || strings.Contains(types[0], "*") {
		return false
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
func headerAgrees(values []string, msgs []rpcRequest, field func(rpcRequest) string) bool {
	return len(values) == 0 || len(values) == 1 && len(msgs) == 1 && field(msgs[0]) == values[0]
}

// inspectJSONRPC reads a JSON-RPC message or batch in one pass and returns
// what every reader of it agrees on. Backends read keys differently: the
// JavaScript and Python SDKs by exact name with the last duplicate
// winning, Go's encoding/json ignoring case (and folding ſ to s, K to k).
// So a key that is "jsonrpc", "method", "params" or params' "name", "uri"
// or "taskId" in any letter case must be spelt exactly and appear once; "\u" escapes count
// as the characters they stand for, as they do for every reader. The body
// must be valid UTF-8 and hold exactly one value (no trailing data, no
// byte order mark), and method and name must be strings without lone
// surrogates, which readers decode differently; so must uri and taskId.
func inspectJSONRPC(body []byte) ([]rpcRequest, error) {
	if !utf8.Valid(body) {
		return nil, errBadJSONRPC
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, errBadJSONRPC
	}
	var msgs []rpcRequest
	switch tok {
	case json.Delim('{'):
		m, err := readMessage(dec)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	case json.Delim('['):
		for dec.More() {
			if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
				return nil, errBadJSONRPC
			}
			m, err := readMessage(dec)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, m)
		}
		if _, err := dec.Token(); err != nil {
			return nil, errBadJSONRPC
		}
	default:
		return nil, errBadJSONRPC
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errBadJSONRPC
	}
	return msgs, nil
}

// readMessage reads a message object after its "{".
func readMessage(dec *json.Decoder) (rpcRequest, error) {
	var m rpcRequest
	err := readObject(dec, []string{"jsonrpc", "method", "params"}, func(key string) error {
		switch key {
		case "method":
			return readString(dec, &m.Method)
		case "params":
			tok, err := dec.Token()
			if err != nil {
				return errBadJSONRPC
			}
			if tok != json.Delim('{') {
				return skipFrom(dec, tok)
			}
			return readObject(dec, []string{"name", "uri", "taskId"}, func(key string) error {
				switch key {
				case "name":
					return readString(dec, &m.Name)
				case "uri":
					return readString(dec, &m.URI)
				}
				return readString(dec, &m.TaskID)
			})
		}
		return skipValue(dec)
	})
	return m, err
}

// readObject reads the members of an object after its "{" up to its "}".
// It hands the value of each watched key to read and skips the others; a
// watched key that repeats, or that another key matches ignoring case, is
// refused.
func readObject(dec *json.Decoder, watched []string, read func(key string) error) error {
	var seen uint8 // bit i: watched[i] was read
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errBadJSONRPC
		}
		key, _ := tok.(string)
		i := slices.IndexFunc(watched, func(w string) bool { return strings.EqualFold(w, key) })
		if i < 0 {
			if err := skipValue(dec); err != nil {
				return err
			}
			continue
		}
		if key != watched[i] || seen&(1<<i) != 0 {
			return errAmbiguousJSONRPC
		}
		seen |= 1 << i
		if err := read(key); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return errBadJSONRPC
	}
	return nil
}

// readString reads a value that must be a string as every reader sees it.
func readString(dec *json.Decoder, into *string) error {
	tok, err := dec.Token()
	if err != nil {
		return errBadJSONRPC
	}
	s, ok := tok.(string)
	// The body is valid UTF-8, so U+FFFD here is a lone surrogate escape
	// (or the character itself, which no method or tool name holds).
	if !ok || strings.ContainsRune(s, utf8.RuneError) {
		return errBadJSONRPC
	}
	*into = s
	return nil
}

// skipValue skips the next value.
func skipValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return errBadJSONRPC
	}
	return skipFrom(dec, tok)
}

// skipFrom skips the rest of a value whose first token, tok, was read.
func skipFrom(dec *json.Decoder, tok json.Token) error {
	for depth := 0; ; {
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth++; depth > maxJSONNesting {
				return errJSONTooDeep
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
		var err error
		if tok, err = dec.Token(); err != nil {
			return errBadJSONRPC
		}
	}
}
