package gate

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// rpcRequest is an rpcMessage as strings, as the reference returns it.
type rpcRequest struct {
	Method string // "method"
	Name   string // "params"."name": the tool of a tools/call
	URI    string // "params"."uri"
	TaskID string // "params"."taskId"
}

// decodeJSONRPC is the reference the scanner is checked against: it reads a
// JSON-RPC message or batch with encoding/json's tokens and returns what
// every reader of it agrees on, by the rules rpcScanner.inspectJSONRPC
// states. It is simple and slow: a token and often an allocation per
// value.
func decodeJSONRPC(body []byte) ([]rpcRequest, error) {
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
		m, err := decodeReadMessage(dec)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	case json.Delim('['):
		for dec.More() {
			if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
				return nil, errBadJSONRPC
			}
			m, err := decodeReadMessage(dec)
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

// decodeReadMessage reads a message object after its "{".
func decodeReadMessage(dec *json.Decoder) (rpcRequest, error) {
	var m rpcRequest
	err := decodeReadObject(dec, []string{"jsonrpc", "method", "params"}, func(key string) error {
		switch key {
		case "method":
			return decodeReadString(dec, &m.Method)
		case "params":
			tok, err := dec.Token()
			if err != nil {
				return errBadJSONRPC
			}
			if tok != json.Delim('{') {
				return decodeSkipFrom(dec, tok)
			}
			return decodeReadObject(dec, []string{"name", "uri", "taskId"}, func(key string) error {
				switch key {
				case "name":
					return decodeReadString(dec, &m.Name)
				case "uri":
					return decodeReadString(dec, &m.URI)
				}
				return decodeReadString(dec, &m.TaskID)
			})
		}
		return decodeSkipValue(dec)
	})
	return m, err
}

// decodeReadObject reads the members of an object after its "{" up to its "}".
// It hands the value of each watched key to read and skips the others; a
// watched key that repeats, or that another key matches ignoring case, is
// refused.
func decodeReadObject(dec *json.Decoder, watched []string, read func(key string) error) error {
	var seen uint8 // bit i: watched[i] was read
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errBadJSONRPC
		}
		key, _ := tok.(string)
		i := slices.IndexFunc(watched, func(w string) bool { return strings.EqualFold(w, key) })
		if i < 0 {
			if err := decodeSkipValue(dec); err != nil {
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

// decodeReadString reads a value that must be a string as every reader sees it.
func decodeReadString(dec *json.Decoder, into *string) error {
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

// decodeSkipValue skips the next value.
func decodeSkipValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return errBadJSONRPC
	}
	return decodeSkipFrom(dec, tok)
}

// decodeSkipFrom skips the rest of a value whose first token, tok, was read.
func decodeSkipFrom(dec *json.Decoder, tok json.Token) error {
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
