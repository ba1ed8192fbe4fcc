// Package tokens holds the authorization server's signing key ring and mints
// and verifies the JWTs it issues (RFC 9068 access tokens).
package tokens

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// ringKey is the store key under which the whole key ring is kept, so that
// every instance sharing a store signs with the same keys.
const ringKey = "keys/ring"

// Algorithms lists the signing algorithms a key ring can use.
var Algorithms = []string{"ES256", "RS256", "EdDSA"}

// KeyRingConfig configures a KeyRing.
type KeyRingConfig struct {
	// Algorithm is the JWS algorithm of new keys: ES256 (default), RS256 or EdDSA.
	Algorithm string
	// RotationPeriod is how long a key signs before its successor takes over.
	RotationPeriod time.Duration
	// RetainPeriod is how long a key stays published after it stopped
	// signing; it must cover the longest lifetime of a token it signed.
	RetainPeriod time.Duration
}

// storedKey is one key as persisted. ActiveFrom is when it starts signing;
// a key stops signing when its successor becomes active.
type storedKey struct {
	JWK        json.RawMessage `json:"jwk"`
	ActiveFrom time.Time       `json:"active_from"`
}

// ringKeyState is a parsed key, ready for signing and verification.
type ringKeyState struct {
	kid        string
	alg        jwa.SignatureAlgorithm
	private    jwk.Key
	public     jwk.Key
	publicRaw  any // the crypto.PublicKey, so verification skips JWK conversion
	activeFrom time.Time
}

// KeyRing holds the signing keys, persisted in a storage.Store. The newest
// active key signs; the next key is published one rotation period before it
// starts signing, and a retired key stays published for RetainPeriod, so
// relying parties that cache the JWKS never meet an unknown kid.
//
// The private keys are stored in plaintext: whoever can read the store can
// sign tokens. Revoke answers a suspected leak.
type KeyRing struct {
	store storage.Store
	cfg   KeyRingConfig
	alg   jwa.SignatureAlgorithm
	now   func() time.Time

	mu     sync.RWMutex
	raw    []byte // the stored bytes the state was parsed from, for Swap
	keys   []ringKeyState
	byKid  map[string]*ringKeyState
	jwks   []byte
	loaded time.Time
	// removals counts installs that dropped a key, so that caches of
	// verified tokens know their entries must be checked again.
	removals atomic.Uint64

	reloadMu   sync.Mutex
	lastReload time.Time
}

// NewKeyRing loads the key ring from store, creating and persisting the
// first keys if there are none, and rotates it if it is due.
func NewKeyRing(ctx context.Context, store storage.Store, cfg KeyRingConfig) (*KeyRing, error) {
	if cfg.Algorithm == "" {
		cfg.Algorithm = "ES256"
	}
	alg, err := signatureAlgorithm(cfg.Algorithm)
	if err != nil {
		return nil, err
	}
	if cfg.RotationPeriod <= 0 {
		return nil, fmt.Errorf("key rotation period must be positive, got %s", cfg.RotationPeriod)
	}
	if cfg.RetainPeriod <= 0 {
		return nil, fmt.Errorf("key retain period must be positive, got %s", cfg.RetainPeriod)
	}
	kr := &KeyRing{store: store, cfg: cfg, alg: alg, now: time.Now}
	if err := kr.Maintain(ctx); err != nil {
		return nil, err
	}
	return kr, nil
}

func signatureAlgorithm(name string) (jwa.SignatureAlgorithm, error) {
	switch name {
	case "ES256":
		return jwa.ES256(), nil
	case "RS256":
		return jwa.RS256(), nil
	case "EdDSA":
		return jwa.EdDSA(), nil
	}
	return jwa.EmptySignatureAlgorithm(), fmt.Errorf("unsupported signing algorithm %q (supported: %v)", name, Algorithms)
}

// Maintain reloads the ring from the store and persists whatever rotation is
// due: a first key, a successor published ahead of time, a switch to a newly
// configured algorithm, the removal of keys past their retention. Concurrent
// instances converge through the store's compare-and-swap.
func (kr *KeyRing) Maintain(ctx context.Context) error {
	return kr.update(ctx, func(keys []storedKey, now time.Time) ([]storedKey, error) {
		return kr.planRotation(keys, now, false)
	})
}

// Rotate makes the published successor key sign from now on and publishes a
// new successor. Tokens signed by the previous key stay valid until the
// retain period ends.
func (kr *KeyRing) Rotate(ctx context.Context) error {
	return kr.update(ctx, func(keys []storedKey, now time.Time) ([]storedKey, error) {
		return kr.planRotation(keys, now, true)
	})
}

// Revoke answers a compromise of the keys: it replaces every key of the
// ring (retired, signing and published successor alike, since they were all
// stored together) with a new signing key and a new successor, and returns
// the kids it dropped. Tokens signed by a dropped key stop verifying at
// once here, and at other instances sharing the store when they next
// Refresh; every client must then obtain new tokens.
func (kr *KeyRing) Revoke(ctx context.Context) ([]string, error) {
	var revoked []string
	err := kr.update(ctx, func(keys []storedKey, now time.Time) ([]storedKey, error) {
		revoked = revoked[:0]
		for _, k := range keys {
			st, err := parseStoredKey(k)
			if err != nil {
				return nil, err
			}
			revoked = append(revoked, st.kid)
		}
		// The ring planned from nothing: a key that signs now and its successor.
		return kr.planRotation(nil, now, false)
	})
	if err != nil {
		return nil, err
	}
	return revoked, nil
}

// update applies plan to the stored ring with optimistic concurrency and
// installs the result in memory.
func (kr *KeyRing) update(ctx context.Context, plan func([]storedKey, time.Time) ([]storedKey, error)) error {
	for attempt := 0; attempt < 10; attempt++ {
		raw, err := kr.store.Get(ctx, ringKey)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("loading signing keys: %w", err)
		}
		var keys []storedKey
		if raw != nil {
			if err := json.Unmarshal(raw, &keys); err != nil {
				return fmt.Errorf("stored signing keys are corrupt: %w", err)
			}
		}
		now := kr.now()
		next, err := plan(keys, now)
		if err != nil {
			return err
		}
		if next == nil { // nothing to change
			return kr.install(raw, keys)
		}
		nextRaw, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if raw == nil {
			err = kr.store.Create(ctx, ringKey, nextRaw, 0)
		} else {
			err = kr.store.Swap(ctx, ringKey, raw, nextRaw, 0)
		}
		if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
			continue // another instance changed the ring first: plan again on its result
		}
		if err != nil {
			return fmt.Errorf("saving signing keys: %w", err)
		}
		return kr.install(nextRaw, next)
	}
	return errors.New("saving signing keys: too much concurrent rotation")
}

// planRotation returns the ring as it should be at now, or nil if the stored
// ring is already right. With force, the successor takes over at once.
func (kr *KeyRing) planRotation(keys []storedKey, now time.Time, force bool) ([]storedKey, error) {
	changed := false
	parsed := make([]ringKeyState, 0, len(keys))
	for _, k := range keys {
		st, err := parseStoredKey(k)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, st)
	}
	sort.SliceStable(parsed, func(i, j int) bool { return parsed[i].activeFrom.Before(parsed[j].activeFrom) })

	// Successors planned with another algorithm are dropped before they
	// ever signed: the configuration changed.
	kept := parsed[:0]
	for _, k := range parsed {
		if k.activeFrom.After(now) && k.alg != kr.alg {
			changed = true
			continue
		}
		kept = append(kept, k)
	}
	parsed = kept

	current := -1
	for i, k := range parsed {
		if !k.activeFrom.After(now) {
			current = i
		}
	}
	// Forcing promotes the published successor; only if there is none must
	// a key that was never published sign at once.
	promoted := false
	if current >= 0 && force && current+1 < len(parsed) {
		parsed[current+1].activeFrom = now
		current++
		promoted = true
		changed = true
	}
	if current < 0 || parsed[current].alg != kr.alg || (force && !promoted) {
		k, err := kr.generate(now)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed[:current+1], k) // drop any later successor: k replaces it
		current = len(parsed) - 1
		changed = true
	}
	if current == len(parsed)-1 {
		k, err := kr.generate(parsed[current].activeFrom.Add(kr.cfg.RotationPeriod))
		if err != nil {
			return nil, err
		}
		if !k.activeFrom.After(now) { // the ring was idle for longer than a period
			k.activeFrom = now.Add(kr.cfg.RotationPeriod)
		}
		parsed = append(parsed, k)
		changed = true
	}

	// A key retired when its successor became active; drop it once every
	// token it signed has expired.
	var out []storedKey
	for i, k := range parsed {
		if i < current && !parsed[i+1].activeFrom.Add(kr.cfg.RetainPeriod).After(now) {
			changed = true
			continue
		}
		raw, err := json.Marshal(k.private)
		if err != nil {
			return nil, err
		}
		out = append(out, storedKey{JWK: raw, ActiveFrom: k.activeFrom})
	}
	if !changed {
		return nil, nil
	}
	return out, nil
}

// generate makes a new private key that starts signing at activeFrom.
func (kr *KeyRing) generate(activeFrom time.Time) (ringKeyState, error) {
	var raw any
	var err error
	switch kr.alg {
	case jwa.ES256():
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.RS256():
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.EdDSA():
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return ringKeyState{}, fmt.Errorf("generating %s signing key: %w", kr.alg, err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		return ringKeyState{}, err
	}
	if err := key.Set(jwk.AlgorithmKey, kr.alg); err != nil {
		return ringKeyState{}, err
	}
	if err := key.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return ringKeyState{}, err
	}
	// kid = RFC 7638 thumbprint, so the same key always has the same id.
	if err := jwk.AssignKeyID(key); err != nil {
		return ringKeyState{}, err
	}
	buf, err := json.Marshal(key)
	if err != nil {
		return ringKeyState{}, err
	}
	return parseStoredKey(storedKey{JWK: buf, ActiveFrom: activeFrom})
}

func parseStoredKey(k storedKey) (ringKeyState, error) {
	private, err := jwk.ParseKey(k.JWK)
	if err != nil {
		return ringKeyState{}, fmt.Errorf("stored signing key is corrupt: %w", err)
	}
	kid, ok := private.KeyID()
	if !ok || kid == "" {
		return ringKeyState{}, errors.New("stored signing key has no kid")
	}
	keyAlg, ok := private.Algorithm()
	if !ok {
		return ringKeyState{}, fmt.Errorf("stored signing key %s has no alg", kid)
	}
	alg, err := signatureAlgorithm(keyAlg.String())
	if err != nil {
		return ringKeyState{}, fmt.Errorf("stored signing key %s: %w", kid, err)
	}
	if err := checkPrivateKey(private, alg); err != nil {
		return ringKeyState{}, fmt.Errorf("stored signing key %s: %w", kid, err)
	}
	public, err := private.PublicKey()
	if err != nil {
		return ringKeyState{}, err
	}
	var publicRaw any
	if err := jwk.Export(public, &publicRaw); err != nil {
		return ringKeyState{}, err
	}
	return ringKeyState{kid: kid, alg: alg, private: private, public: public, publicRaw: publicRaw, activeFrom: k.ActiveFrom}, nil
}

// checkPrivateKey makes sure key is a private key that can sign with alg,
// so that a damaged ring fails when it is loaded, not on every Sign.
func checkPrivateKey(key jwk.Key, alg jwa.SignatureAlgorithm) error {
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return err
	}
	ok := false
	switch k := raw.(type) {
	case *ecdsa.PrivateKey:
		ok = alg == jwa.ES256() && k.Curve == elliptic.P256()
	case *rsa.PrivateKey:
		ok = alg == jwa.RS256()
	case ed25519.PrivateKey:
		ok = alg == jwa.EdDSA()
	}
	if !ok {
		return fmt.Errorf("a %T cannot sign with %s", raw, alg)
	}
	return nil
}

// install makes the parsed ring the one in use. Unchanged data, or none
// (the store lost the ring), keeps the keys in memory.
func (kr *KeyRing) install(raw []byte, stored []storedKey) error {
	kr.mu.RLock()
	unchanged := raw == nil || bytes.Equal(raw, kr.raw)
	kr.mu.RUnlock()
	if unchanged {
		return nil
	}
	keys := make([]ringKeyState, 0, len(stored))
	for _, k := range stored {
		st, err := parseStoredKey(k)
		if err != nil {
			return err
		}
		keys = append(keys, st)
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].activeFrom.Before(keys[j].activeFrom) })
	byKid := make(map[string]*ringKeyState, len(keys))
	set := jwk.NewSet()
	for i := range keys {
		byKid[keys[i].kid] = &keys[i]
		if err := set.AddKey(keys[i].public); err != nil {
			return err
		}
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return err
	}
	kr.mu.Lock()
	for kid := range kr.byKid {
		if _, kept := byKid[kid]; !kept {
			kr.removals.Add(1)
			break
		}
	}
	kr.raw, kr.keys, kr.byKid, kr.jwks, kr.loaded = raw, keys, byKid, jwks, kr.now()
	kr.mu.Unlock()
	return nil
}

// signingKey returns the key that signs now.
func (kr *KeyRing) signingKey() (*ringKeyState, error) {
	now := kr.now()
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	for i := len(kr.keys) - 1; i >= 0; i-- {
		if !kr.keys[i].activeFrom.After(now) {
			return &kr.keys[i], nil
		}
	}
	return nil, errors.New("no active signing key")
}

// verificationKey returns the published key with the given kid. An unknown
// kid makes the ring re-read the store (at most once per second), so a key
// that another instance sharing the store just created is found.
func (kr *KeyRing) verificationKey(ctx context.Context, kid string) (*ringKeyState, bool) {
	kr.mu.RLock()
	k, ok := kr.byKid[kid]
	kr.mu.RUnlock()
	if ok {
		return k, true
	}
	kr.reloadMu.Lock()
	due := kr.now().Sub(kr.lastReload) >= time.Second
	if due {
		kr.lastReload = kr.now()
	}
	kr.reloadMu.Unlock()
	if !due || kr.Refresh(ctx) != nil {
		return nil, false
	}
	kr.mu.RLock()
	k, ok = kr.byKid[kid]
	kr.mu.RUnlock()
	return k, ok
}

// Refresh re-reads the ring from the store without changing the store: an
// instance whose configuration differs must not undo another's rotation.
// It is how a Revoke at another instance takes effect here. If the store
// lost the ring, the keys in memory stay in use.
func (kr *KeyRing) Refresh(ctx context.Context) error {
	return kr.update(ctx, func([]storedKey, time.Time) ([]storedKey, error) { return nil, nil })
}

// JWKS returns the JSON Web Key Set of the published public keys.
func (kr *KeyRing) JWKS() []byte {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.jwks
}

// Algorithm returns the JWS algorithm new tokens are signed with.
func (kr *KeyRing) Algorithm() string { return kr.alg.String() }

// SigningKeyID returns the kid of the key that signs now.
func (kr *KeyRing) SigningKeyID() string {
	k, err := kr.signingKey()
	if err != nil {
		return ""
	}
	return k.kid
}
