package state

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Proofs remembers the DPoP proofs presented to the token endpoint, by
// the Hash of their key's thumbprint and jti, until they could no longer
// be accepted: a proof replayed to any instance sharing the store is
// refused. It is a dpop.Replay.
type Proofs struct {
	store storage.Store
}

// Use records the proof of key jkt with jti as used for ttl and reports
// whether it was not used before.
func (p *Proofs) Use(ctx context.Context, jkt, jti string, ttl time.Duration) (bool, error) {
	switch err := p.store.Create(ctx, keyDPoPProof+Hash(jkt+"\x00"+jti), []byte{1}, ttl); {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrConflict):
		return false, nil
	default:
		return false, err
	}
}

// DPoPNonceKey returns the key that the DPoP server nonces of every site
// sharing store are MACed with (see dpop.Nonces), made at first use.
func DPoPNonceKey(ctx context.Context, store storage.Store) ([]byte, error) {
	for range 3 {
		key, err := store.Get(ctx, keyDPoPNonceKey)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		fresh := make([]byte, 32)
		_, _ = rand.Read(fresh)
		switch err := store.Create(ctx, keyDPoPNonceKey, fresh, 0); {
		case err == nil:
			return fresh, nil
		case !errors.Is(err, storage.ErrConflict):
			return nil, err
		}
		// Another instance made it at the same time: read theirs.
	}
	return nil, errors.New("state: the DPoP nonce key keeps disappearing")
}
