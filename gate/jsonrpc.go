package gate

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// rpcMessage is what the gate judges a JSON-RPC message by. The fields
// alias the body when they hold no escapes, so reading them allocates
// nothing; they are valid while the body is.
type rpcMessage struct {
	Method []byte // "method"
	Name   []byte // "params"."name": the tool of a tools/call
	URI    []byte // "params"."uri"
	TaskID []byte // "params"."taskId"
}

// mcpName is the field of m that a 2026-07-28 client mirrors in the
// Mcp-Name header (SEP-2243), nil for methods without one.
func (m *rpcMessage) mcpName() []byte {
	switch string(m.Method) {
	case "tools/call", "prompts/get":
		return m.Name
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return m.URI
	case "tasks/get", "tasks/update", "tasks/cancel":
		return m.TaskID
	}
	return nil
}

// The keys the gate reads, in a message and in its params; a key that
// matches one ignoring case must be spelt exactly and appear once.
var (
	messageKeys = [...][]byte{[]byte("jsonrpc"), []byte("method"), []byte("params")}
	paramsKeys  = [...][]byte{[]byte("name"), []byte("uri"), []byte("taskId")}
)

// Indexes into messageKeys and paramsKeys.
const (
	keyMethod = 1
	keyParams = 2
	keyName   = 0
	keyURI    = 1
)

// rpcScanner reads a JSON-RPC body in one pass over its bytes, without
// building tokens: it validates the whole body as encoding/json does and
// reads only the keys the gate judges. Scanners are reused across
// requests (see scanners), so a message or key is read without
// allocating unless it holds escapes.
type rpcScanner struct {
	body []byte
	pos  int
	msgs []rpcMessage
	key  []byte // the last key with escapes, decoded
}

// inspectJSONRPC reads a JSON-RPC message or batch in one pass and returns
// what every reader of it agrees on. Backends read keys differently: the
// JavaScript and Python SDKs by exact name with the last duplicate
// winning, Go's encoding/json ignoring case (and folding ſ to s, K to k).
// So a key that is "jsonrpc", "method", "params" or params' "name", "uri"
// or "taskId" in any letter case must be spelt exactly and appear once;
// "\u" escapes count as the characters they stand for, as they do for
// every reader. The body must be valid UTF-8 and hold exactly one value
// (no trailing data, no byte order mark), and method and name must be
// strings without lone surrogates, which readers decode differently; so
// must uri and taskId. Values the gate does not judge are skipped but
// checked as JSON, nesting at most maxJSONNesting levels. The messages
// returned are s's, valid until s reads again.
func (s *rpcScanner) inspectJSONRPC(body []byte) ([]rpcMessage, error) {
	clear(s.msgs) // drop references to the previous body
	s.body, s.pos, s.msgs = body, 0, s.msgs[:0]
	if !utf8.Valid(body) {
		return nil, errBadJSONRPC
	}
	switch s.skipSpace() {
	case '{':
		s.pos++
		if err := s.readMessage(); err != nil {
			return nil, err
		}
	case '[':
		s.pos++
		if s.skipSpace() == ']' {
			s.pos++
			break
		}
		for {
			if s.skipSpace() != '{' {
				return nil, errBadJSONRPC
			}
			s.pos++
			if err := s.readMessage(); err != nil {
				return nil, err
			}
			if !s.next(']') {
				return nil, errBadJSONRPC
			}
			if s.body[s.pos-1] == ']' {
				break
			}
		}
	default:
		return nil, errBadJSONRPC
	}
	if s.skipSpace() != 0 || s.pos < len(s.body) {
		return nil, errBadJSONRPC
	}
	return s.msgs, nil
}

// next consumes the "," or closer that follows a member or element, and
// reports whether there was one.
func (s *rpcScanner) next(closer byte) bool {
	switch s.skipSpace() {
	case ',', closer:
		s.pos++
		return true
	}
	return false
}

// readMessage reads a message object after its "{" up to its "}".
func (s *rpcScanner) readMessage() error {
	s.msgs = append(s.msgs, rpcMessage{})
	m := &s.msgs[len(s.msgs)-1]
	return s.readObject(messageKeys[:], func(key int) error {
		switch key {
		case keyMethod:
			return s.readString(&m.Method)
		case keyParams:
			if s.skipSpace() != '{' {
				return s.skipValue()
			}
			s.pos++
			return s.readObject(paramsKeys[:], func(key int) error {
				switch key {
				case keyName:
					return s.readString(&m.Name)
				case keyURI:
					return s.readString(&m.URI)
				}
				return s.readString(&m.TaskID)
			})
		}
		return s.skipValue()
	})
}

// readObject reads the members of an object after its "{" up to its "}".
// It hands the value of each watched key, by its index, to read and skips
// the others; a watched key that repeats, or that another key matches
// ignoring case, is refused as soon as it is read.
func (s *rpcScanner) readObject(watched [][]byte, read func(key int) error) error {
	if s.skipSpace() == '}' {
		s.pos++
		return nil
	}
	var seen uint8 // bit i: watched[i] was read
	for {
		key, err := s.readKey()
		if err != nil {
			return err
		}
		i := -1
		for j, w := range watched {
			if bytes.EqualFold(w, key) {
				i = j
				break
			}
		}
		if i >= 0 && (!bytes.Equal(key, watched[i]) || seen&(1<<i) != 0) {
			return errAmbiguousJSONRPC
		}
		if s.skipSpace() != ':' {
			return errBadJSONRPC
		}
		s.pos++
		if i < 0 {
			err = s.skipValue()
		} else {
			seen |= 1 << i
			err = read(i)
		}
		if err != nil {
			return err
		}
		if !s.next('}') {
			return errBadJSONRPC
		}
		if s.body[s.pos-1] == '}' {
			return nil
		}
	}
}

// readKey reads an object's key, decoded: a key with escapes is decoded
// into s.key, valid until the next key.
func (s *rpcScanner) readKey() ([]byte, error) {
	if s.skipSpace() != '"' {
		return nil, errBadJSONRPC
	}
	raw, escaped, err := s.scanString()
	if err != nil || !escaped {
		return raw, err
	}
	s.key = unquote(s.key[:0], raw)
	return s.key, nil
}

// readString reads a value that must be a string as every reader sees it.
func (s *rpcScanner) readString(into *[]byte) error {
	if s.skipSpace() != '"' {
		// Anything else, valid or not, is refused here.
		return errBadJSONRPC
	}
	raw, escaped, err := s.scanString()
	if err != nil {
		return err
	}
	if escaped {
		raw = unquote(nil, raw)
	}
	// The body is valid UTF-8, so U+FFFD here is a lone surrogate escape
	// (or the character itself, which no method or tool name holds).
	if bytes.Contains(raw, replacementChar) {
		return errBadJSONRPC
	}
	*into = raw
	return nil
}

var replacementChar = []byte(string(utf8.RuneError))

// scanString reads a string from its opening quote and returns its
// contents as sent, and whether they hold escapes.
func (s *rpcScanner) scanString() (raw []byte, escaped bool, err error) {
	start := s.pos + 1
	for i := start; i < len(s.body); i++ {
		switch c := s.body[i]; {
		case c == '"':
			s.pos = i + 1
			return s.body[start:i], escaped, nil
		case c < 0x20:
			return nil, false, errBadJSONRPC
		case c == '\\':
			escaped = true
			if i+1 >= len(s.body) {
				return nil, false, errBadJSONRPC
			}
			switch s.body[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+5 >= len(s.body) || hex4(s.body[i+2:i+6]) < 0 {
					return nil, false, errBadJSONRPC
				}
				i += 5
			default:
				return nil, false, errBadJSONRPC
			}
		}
	}
	return nil, false, errBadJSONRPC
}

// skipValue checks and skips the next value, which may nest up to
// maxJSONNesting arrays and objects.
func (s *rpcScanner) skipValue() error {
	var (
		depth   int
		objects uint64 // bit d-1: the container at depth d is an object
	)
	for {
		// A value is expected.
		switch c := s.skipSpace(); c {
		case '{', '[':
			if depth++; depth > maxJSONNesting {
				return errJSONTooDeep
			}
			s.pos++
			if c == '{' {
				objects |= 1 << (depth - 1)
				if s.skipSpace() == '}' {
					s.pos++
					depth--
					break
				}
				if err := s.skipMemberName(); err != nil {
					return err
				}
				continue
			}
			objects &^= 1 << (depth - 1)
			if s.skipSpace() == ']' {
				s.pos++
				depth--
				break
			}
			continue
		case '"':
			if _, _, err := s.scanString(); err != nil {
				return err
			}
		case 't':
			if !s.literal("true") {
				return errBadJSONRPC
			}
		case 'f':
			if !s.literal("false") {
				return errBadJSONRPC
			}
		case 'n':
			if !s.literal("null") {
				return errBadJSONRPC
			}
		default:
			if !s.number() {
				return errBadJSONRPC
			}
		}
		// A value ended: close the containers it ends, up to one that
		// goes on with another member or element.
		for {
			if depth == 0 {
				return nil
			}
			closer := byte(']')
			inObject := objects&(1<<(depth-1)) != 0
			if inObject {
				closer = '}'
			}
			if !s.next(closer) {
				return errBadJSONRPC
			}
			if s.body[s.pos-1] == ',' {
				if inObject {
					if err := s.skipMemberName(); err != nil {
						return err
					}
				}
				break
			}
			depth--
		}
	}
}

// skipMemberName skips a key that is not judged and its colon.
func (s *rpcScanner) skipMemberName() error {
	if s.skipSpace() != '"' {
		return errBadJSONRPC
	}
	if _, _, err := s.scanString(); err != nil {
		return err
	}
	if s.skipSpace() != ':' {
		return errBadJSONRPC
	}
	s.pos++
	return nil
}

// literal consumes word if the body goes on with it.
func (s *rpcScanner) literal(word string) bool {
	if !bytes.HasPrefix(s.body[s.pos:], []byte(word)) {
		return false
	}
	s.pos += len(word)
	return true
}

// number consumes a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *rpcScanner) number() bool {
	b, i := s.body, s.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return false
		}
		i = skipDigits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		i = skipDigits(b, i)
	}
	s.pos = i
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// skipSpace skips JSON whitespace and returns the next byte, 0 at the end.
func (s *rpcScanner) skipSpace() byte {
	for ; s.pos < len(s.body); s.pos++ {
		switch c := s.body[s.pos]; c {
		case ' ', '\t', '\r', '\n':
		default:
			return c
		}
	}
	return 0
}

// unquote appends to dst the string raw (checked by scanString) decodes
// to, as encoding/json decodes it: a "\u" escape of a surrogate that does
// not pair with the next escape stands for U+FFFD.
func unquote(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2 = hex4(raw[i+3 : i+7])
				}
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					r = pair
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, raw[i])
		}
	}
	return dst
}

// hex4 decodes four hexadecimal digits, -1 if they are not.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
