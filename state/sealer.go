package state

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// SealKeySize is the size of a sealing key: AES-256.
const SealKeySize = 32

// sealVersion is the first byte of a sealed value, for a later format.
const sealVersion = 1

// sealKeyIDSize is how many bytes of a key's id a sealed value carries.
const sealKeyIDSize = 4

// ErrUnsealable is returned for a sealed value that no key opens: sealed
// with a key no longer configured, damaged, or moved to another record.
var ErrUnsealable = errors.New("state: the sealed value cannot be opened with the configured keys")

// Sealer encrypts secrets kept in the store with AES-256-GCM. A sealed
// value is a version byte, the id of the key that sealed it, a random
// nonce and the ciphertext; the caller's additional data (the record's
// key) binds it to its place, so that values cannot be swapped between
// records. New values are sealed with the current key; older keys still
// open what they sealed, so keys can rotate without losing records.
type Sealer struct {
	current sealKey
	keys    []sealKey // current first
}

type sealKey struct {
	id   [sealKeyIDSize]byte
	aead cipher.AEAD
}

// NewSealer returns a Sealer that seals with current and opens with it
// and with each of old. Every key is SealKeySize bytes.
func NewSealer(current []byte, old ...[]byte) (*Sealer, error) {
	s := &Sealer{}
	for i, raw := range append([][]byte{current}, old...) {
		if len(raw) != SealKeySize {
			return nil, fmt.Errorf("key %d has %d bytes, want %d", i+1, len(raw), SealKeySize)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k := sealKey{id: sealKeyID(raw), aead: aead}
		for _, have := range s.keys {
			if have.id == k.id {
				return nil, fmt.Errorf("key %d is given twice", i+1)
			}
		}
		s.keys = append(s.keys, k)
	}
	s.current = s.keys[0]
	return s, nil
}

// sealKeyID names a key without revealing it.
func sealKeyID(key []byte) [sealKeyIDSize]byte {
	sum := sha256.Sum256(append([]byte("caddy-mcp-auth seal key id\x00"), key...))
	return [sealKeyIDSize]byte(sum[:sealKeyIDSize])
}

// Seal encrypts plaintext bound to additional.
func (s *Sealer) Seal(plaintext, additional []byte) []byte {
	k := s.current
	out := make([]byte, 1+sealKeyIDSize+k.aead.NonceSize(), 1+sealKeyIDSize+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	copy(out[1:], k.id[:])
	nonce := out[1+sealKeyIDSize:]
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return k.aead.Seal(out, nonce, plaintext, additional)
}

// Open decrypts what Seal sealed with any of the keys and the same
// additional data. It reports whether the current key sealed it, so that
// a caller may seal it again with that key.
func (s *Sealer) Open(sealed, additional []byte) (plaintext []byte, current bool, err error) {
	if len(sealed) < 1+sealKeyIDSize || sealed[0] != sealVersion {
		return nil, false, ErrUnsealable
	}
	id := [sealKeyIDSize]byte(sealed[1 : 1+sealKeyIDSize])
	for _, k := range s.keys {
		if k.id != id {
			continue
		}
		rest := sealed[1+sealKeyIDSize:]
		if len(rest) < k.aead.NonceSize() {
			return nil, false, ErrUnsealable
		}
		plain, err := k.aead.Open(nil, rest[:k.aead.NonceSize()], rest[k.aead.NonceSize():], additional)
		if err != nil {
			return nil, false, ErrUnsealable
		}
		return plain, k.id == s.current.id, nil
	}
	return nil, false, ErrUnsealable
}
