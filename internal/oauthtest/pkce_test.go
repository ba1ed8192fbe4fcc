package oauthtest

import "testing"

func TestS256MatchesRFC7636(t *testing.T) {
	// RFC 7636 appendix B.
	if got := S256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Errorf("S256 = %q", got)
	}
}

func TestNewPKCEIsFreshAndConsistent(t *testing.T) {
	a, b := NewPKCE(), NewPKCE()
	if len(a.Verifier) != 43 || a.Challenge != S256(a.Verifier) {
		t.Errorf("pair %+v", a)
	}
	if a.Verifier == b.Verifier {
		t.Error("two pairs share a verifier")
	}
}
