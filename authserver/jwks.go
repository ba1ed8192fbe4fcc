package authserver

import "net/http"

func (s *Site) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeBody(w, r, s.Ring.JWKS())
}
