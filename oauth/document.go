package oauth

import (
	"net/http"
	"strconv"
)

// WriteDocument answers GET and HEAD with a public discovery document
// (metadata, key sets) that clients may cache for five minutes; any other
// method gets 405.
func WriteDocument(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		WriteError(w, nil, NewError(http.StatusMethodNotAllowed, InvalidRequest, "method not allowed"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
