package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// DefaultNonceLifetime is how long a server nonce is accepted.
const DefaultNonceLifetime = 5 * time.Minute

// nonceMACLength is how much of the HMAC a nonce carries: 128 bits.
const nonceMACLength = 16

// Nonces issues and checks server nonces (RFC 9449 section 8) without
// storing them: a nonce is the time it was issued with a MAC over it, so
// every instance that shares the key accepts the others' nonces. A nonce
// is good for Lifetime after it was issued; clients are handed a fresh
// one in every response, and told to use_dpop_nonce when theirs is stale.
type Nonces struct {
	key []byte
	// Lifetime is how long a nonce is accepted; zero means the default.
	Lifetime time.Duration
}

// NewNonces returns nonces MACed with key, which all instances of a site
// share and nothing else uses. context separates the sites that share
// one key: a nonce made for one is refused by another.
func NewNonces(key []byte, context string) *Nonces {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("mcp_auth dpop nonce\x00" + context))
	return &Nonces{key: mac.Sum(nil)}
}

// Issue returns a nonce issued at now.
func (n *Nonces) Issue(now time.Time) string {
	var buf [8 + nonceMACLength]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(now.Unix()))
	copy(buf[8:], n.mac(buf[:8]))
	return base64.RawURLEncoding.EncodeToString(buf[:])
}

// Valid reports whether nonce is one of ours and still good at now.
func (n *Nonces) Valid(nonce string, now time.Time) bool {
	var buf [8 + nonceMACLength]byte
	if base64.RawURLEncoding.EncodedLen(len(buf)) != len(nonce) {
		return false
	}
	if k, err := base64.RawURLEncoding.Decode(buf[:], []byte(nonce)); err != nil || k != len(buf) {
		return false
	}
	if !hmac.Equal(buf[8:], n.mac(buf[:8])) {
		return false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(buf[:8])), 0)
	lifetime := n.Lifetime
	if lifetime == 0 {
		lifetime = DefaultNonceLifetime
	}
	// A nonce from a moment ahead comes from an instance whose clock
	// runs a little fast; one from far ahead is not ours.
	return !issued.After(now.Add(DefaultSkew)) && now.Before(issued.Add(lifetime))
}

func (n *Nonces) mac(msg []byte) []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write(msg)
	return m.Sum(nil)[:nonceMACLength]
}
