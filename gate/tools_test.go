package gate

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestInspectJSONRPC(t *testing.T) {
	call := func(name string) []rpcRequest { return []rpcRequest{{Method: "tools/call", Name: name}} }
	for body, want := range map[string][]rpcRequest{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo","arguments":{"Name":"x","name":"y"}}}`: call("delete_todo"),
		`{"method":"tools/call","params":{"n\u0061me":"delete_todo"}}`:                                                       call("delete_todo"),
		`{"method":"tools\/call","params":{"name":"delete\u005ftodo"}}`:                                                      call("delete_todo"),
		` [{"method":"tools/list"},{"method":"tools/call","params":{"name":"a"}}] `:                                          {{Method: "tools/list"}, {Method: "tools/call", Name: "a"}},
		`{"method":"tools/call","params":null,"id":1e999}`:                                                                   {{Method: "tools/call"}},
		`{"method":"x","params":[1,{"name":"a"}],"other":{"method":"tools/call"}}`:                                           {{Method: "x"}},
		`{"method":"tools/call","params":{"name":"\ud83d\ude00"}}`:                                                           call("😀"),
		`{"method":"resources/read","params":{"uri":"file:///a","name":"x"}}`:                                                {{Method: "resources/read", Name: "x", URI: "file:///a"}},
		`[]`: nil,
	} {
		got, err := inspectJSONRPC([]byte(body))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v, %v; want %v", body, got, err, want)
		}
		if got, err := decodeJSONRPC([]byte(body)); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v, %v; want %v", body, got, err, want)
		}
	}
	for _, body := range []string{
		`{"method":"tools/call","params":{"name":"delete_todo","NAME":"x"}}`,
		`{"method":"tools/call","params":{"NAME":"x","name":"delete_todo"}}`,
		`{"method":"tools/call","params":{"name":"delete_todo","name":"x"}}`,
		`{"method":"tools/call","Method":"ping","params":{"name":"delete_todo"}}`,
		`{"Method":"ping","method":"tools/call","params":{"name":"delete_todo"}}`,
		`{"method":"tools/call","method":"ping"}`,
		`{"method":"tools/call","params":{"name":"a"},"Params":{"name":"b"}}`,
		`{"method":"resources/read","params":{"uri":"file:///a","URI":"file:///b"}}`,
		`{"method":"tasks/get","params":{"taskId":"a","taskid":"b"}}`,
		`{"method":"tools/call","paramſ":{"name":"b"}}`,
		`{"method":"tools/call","params":{"name":"a"},"p\u0061rams":{"name":"b"}}`,
		`{"jsonrpc":"2.0","JSONRPC":"1.0","method":"ping"}`,
		`[{"method":"ping"},{"method":"tools/call","params":{"name":"a","Name":"b"}}]`,
		`{"method":"tools/call","params":{"name":"a"}} {"method":"ping"}`,
		`{"method":"tools/call","params":{"name":"a"}}x`,
		"\ufeff{\"method\":\"ping\"}",
		"{\"method\":\"tools/call\",\"params\":{\"name\":\"a\xff\"}}",
		`{"method":"tools/call","params":{"name":"a\ud800"}}`,
		`{"method":1}`, `{"method":null}`, `{"method":"tools/call","params":{"name":["a"]}}`,
		`"tools/call"`, `null`, `[[{"method":"tools/call"}]]`, `[1]`, `{"method":"x"`, ``,
		`{"method":"ping","params":` + strings.Repeat("[", maxJSONNesting+1) + strings.Repeat("]", maxJSONNesting+1) + `}`,
		`{"method":"ping","id":` + strings.Repeat(`{"a":`, maxJSONNesting+1) + "1" + strings.Repeat("}", maxJSONNesting+1) + `}`,
		`{"method":"ping","params":` + strings.Repeat("[", 1<<20),
	} {
		if got, err := inspectJSONRPC([]byte(body)); err == nil {
			t.Errorf("%s: accepted as %v", body, got)
		}
		if got, err := decodeJSONRPC([]byte(body)); err == nil {
			t.Errorf("%s: reference accepted as %v", body, got)
		}
	}
}

// inspectJSONRPC runs a fresh scanner on body and returns its messages as
// strings.
func inspectJSONRPC(body []byte) ([]rpcRequest, error) {
	var s rpcScanner
	msgs, err := s.inspectJSONRPC(body)
	var out []rpcRequest
	for _, m := range msgs {
		out = append(out, rpcRequest{string(m.Method), string(m.Name), string(m.URI), string(m.TaskID)})
	}
	return out, err
}

// FuzzInspectJSONRPC checks that the scanner decides every body as the
// reference decoder does, with the same error and the same reading, and
// that what the gate reads from a body is what every backend reads:
// accepted bodies give the same methods and tool names to an exact-key,
// last-duplicate-wins reading (JavaScript's JSON.parse, Python's
// json.loads) and to Go's case-insensitive struct decoding (Go SDK
// backends), whenever that one can decode the body.
func FuzzInspectJSONRPC(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo"}}`,
		`{"method":"tools/call","params":{"name":"delete_todo","NAME":"x"}}`,
		`{"Method":"ping","method":"tools/call"}`,
		`[{"method":"tools/list"},{"method":"tools/call","params":{"n\u0061me":"a"}}]`,
		`{"method":"tools/call","paramſ":{"name":"b"}}`,
		`{"method":"tools/call","params":{"name":"a"}} []`,
		`{"method":"ping","params":` + strings.Repeat("[", maxJSONNesting) + strings.Repeat("]", maxJSONNesting) + `}`,
		`{"method":"tools/call","params":{"name":"\ud83d\ude00\ud800\u0041\udc00x","arguments":{"a":[1.5e-3,-0,true,null,{"b":"\"\\\/\b\f\n\r\t"}]}}}`,
		`{"Method"}`, `[{"method":"a"},]`, `{"params":{"name":"a","uri":"b","taskId":"c"},"id":` + strings.Repeat(`{"a":[`, 32) + "0" + strings.Repeat("]}", 32) + `}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := inspectJSONRPC(body)
		want, wantErr := decodeJSONRPC(body)
		if !errors.Is(err, wantErr) || !slices.Equal(got, want) {
			t.Fatalf("%q: scanner read %v, %v; reference %v, %v", body, got, err, want, wantErr)
		}
		if err != nil {
			return
		}
		// A batch, a message and its params hold the skipped values.
		if depth := jsonNesting(body); depth > maxJSONNesting+3 {
			t.Fatalf("accepted %q, nested %d levels deep", body, depth)
		}
		var exact any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&exact); err != nil {
			t.Fatalf("accepted %q, which is not JSON: %v", body, err)
		}
		if want := exactReading(t, exact); !slices.Equal(got, want) {
			t.Fatalf("%q: gate read %v, exact-key reader %v", body, got, want)
		}
		type goMessage struct {
			Method string
			Params struct{ Name, URI, TaskID string }
		}
		var folded []goMessage
		if strings.HasPrefix(strings.TrimLeft(string(body), " \t\r\n"), "[") {
			err = json.Unmarshal(body, &folded)
		} else {
			folded = make([]goMessage, 1)
			err = json.Unmarshal(body, &folded[0])
		}
		if err != nil {
			return // a Go backend refuses the body too
		}
		for i, m := range folded {
			if (rpcRequest{m.Method, m.Params.Name, m.Params.URI, m.Params.TaskID}) != got[i] {
				t.Fatalf("%q: gate read %v, case-insensitive reader %+v", body, got, folded)
			}
		}
	})
}

// jsonNesting is how deep the arrays and objects of a valid JSON text nest.
func jsonNesting(body []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// exactReading reads methods and tool names from a decoded body as
// JavaScript does.
func exactReading(t *testing.T, v any) []rpcRequest {
	msgs, isBatch := v.([]any)
	if !isBatch {
		msgs = []any{v}
	}
	var out []rpcRequest
	for _, m := range msgs {
		obj, ok := m.(map[string]any)
		if !ok {
			t.Fatalf("accepted a message that is not an object: %v", m)
		}
		var r rpcRequest
		r.Method, _ = obj["method"].(string)
		if params, ok := obj["params"].(map[string]any); ok {
			r.Name, _ = params["name"].(string)
			r.URI, _ = params["uri"].(string)
			r.TaskID, _ = params["taskId"].(string)
		}
		out = append(out, r)
	}
	return out
}

func TestInspectableBody(t *testing.T) {
	for _, h := range []http.Header{
		{"Content-Type": {"application/json"}},
		{"Content-Type": {"Application/JSON; Charset=UTF-8"}},
		{"Content-Type": {`application/json;charset="utf-8"`}},
		{"Content-Type": {"application/json"}, "Content-Encoding": {"identity"}},
		{"Content-Type": {"application/json"}, "Content-Encoding": {" IDENTITY"}},
	} {
		if !inspectableBody(h) {
			t.Errorf("%v refused", h)
		}
	}
	for _, h := range []http.Header{
		{},
		{"Content-Type": {""}},
		{"Content-Type": {"application/json; charset=utf-7"}},
		{"Content-Type": {"application/json; charset=UTF-16"}},
		{"Content-Type": {"application/json; charset=utf-16le"}},
		{"Content-Type": {"application/json; charset=latin1"}},
		{"Content-Type": {`application/json; charset="utf-7"`}},
		{"Content-Type": {"application/json; charset*=utf-8''utf-7"}},
		{"Content-Type": {"application/json; charset=utf-8; charset=utf-7"}},
		{"Content-Type": {"application/json; CHARSET=utf-7"}},
		{"Content-Type": {`application/json; x=";charset=utf-7"`}},
		{"Content-Type": {"application/json, charset=utf-7"}},
		{"Content-Type": {"text/plain"}},
		{"Content-Type": {"application/json-seq"}},
		{"Content-Type": {"application/json", "application/json; charset=utf-7"}},
		{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}},
		{"Content-Type": {"application/json"}, "Content-Encoding": {"identity, gzip"}},
		{"Content-Type": {"application/json"}, "Content-Encoding": {"identity", "deflate"}},
		{"Content-Type": {"application/json"}, "Content-Encoding": {"br"}},
		{"Content-Type": {"application/json"}, "Content-Encoding": {""}},
	} {
		if inspectableBody(h) {
			t.Errorf("%v accepted", h)
		}
	}
}

// FuzzInspectableBody checks that a Content-Type the gate accepts is
// application/json with at most a utf-8 charset also to a reader that
// splits parameters at every ";" without Go's quoting rules.
func FuzzInspectableBody(f *testing.F) {
	for _, seed := range []string{
		"application/json", "application/json; charset=utf-8", "application/json; charset=utf-7",
		`application/json; x=";charset=utf-7"`, "application/json; charset*=utf-8''utf-7", `application/json;charset="utf-8"`,
	} {
		f.Add(seed, "")
	}
	f.Add("application/json", "gzip")
	f.Fuzz(func(t *testing.T, contentType, contentEncoding string) {
		h := http.Header{"Content-Type": {contentType}}
		if contentEncoding != "" {
			h.Set("Content-Encoding", contentEncoding)
		}
		if !inspectableBody(h) {
			return
		}
		if contentEncoding != "" && !strings.EqualFold(strings.TrimSpace(contentEncoding), "identity") {
			t.Fatalf("accepted Content-Encoding %q", contentEncoding)
		}
		mediaType, params, _ := strings.Cut(contentType, ";")
		if !strings.EqualFold(strings.TrimSpace(mediaType), "application/json") {
			t.Fatalf("accepted media type %q", contentType)
		}
		for _, param := range strings.Split(params, ";") {
			name, value, _ := strings.Cut(param, "=")
			value = strings.NewReplacer(`"`, "", `\`, "").Replace(strings.TrimSpace(value))
			if strings.TrimSpace(param) != "" && (!strings.EqualFold(strings.TrimSpace(name), "charset") || !strings.EqualFold(value, "utf-8")) {
				t.Fatalf("accepted %q: a simple reader sees parameter %q", contentType, param)
			}
		}
	})
}

func TestInspectedBody(t *testing.T) {
	const sent = `{"method":"tools/call","params":{"name":"a"}}`
	body, err := readBody(strings.NewReader(sent))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := got.ReadFrom(body); err != nil || got.String() != sent {
		t.Fatalf("read %q, %v; want %q", got.String(), err, sent)
	}
	if err := body.Close(); err != nil {
		t.Fatal(err)
	}
	// The buffer may already hold another request's body.
	if n, err := body.Read(make([]byte, 8)); n != 0 || err != http.ErrBodyReadAfterClose {
		t.Fatalf("read after Close: %d, %v", n, err)
	}
	if err := body.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := readBody(strings.NewReader(strings.Repeat(" ", maxInspectedBody+1))); err != errBodyTooLarge {
		t.Fatalf("a body over the limit: %v", err)
	}
}
