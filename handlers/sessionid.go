package handlers

import (
	"errors"
	"net/http"
	"strings"
)

// maxSessionIDLength bounds an Mcp-Session-Id; the ids MCP servers issue
// (UUIDs, random tokens) are far shorter.
const maxSessionIDLength = 512

var errBadSessionID = errors.New("the Mcp-Session-Id header must come at most once, as 1 to 512 visible ASCII characters")

// sessionID returns the MCP session id of a request, "" for none. An
// empty header counts as none and is removed, so the backend sees none
// either. More than one header, or an id that is not the visible ASCII
// the MCP specification allows, or longer than maxSessionIDLength, is
// refused rather than passed unchecked: the backend must never see a
// session the owner check did not.
func sessionID(h http.Header) (string, error) {
	values := h.Values("Mcp-Session-Id")
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", errBadSessionID
	case values[0] == "":
		h.Del("Mcp-Session-Id")
		return "", nil
	}
	id := values[0]
	if len(id) > maxSessionIDLength || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", errBadSessionID
	}
	return id, nil
}
