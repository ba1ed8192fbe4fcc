package clients

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// registeredIDBytes is how many random bytes a registered client's id
// has: 22 base64url characters.
const registeredIDBytes = 16

// maxConfiguredIDLength bounds the ids of configured clients.
const maxConfiguredIDLength = 64

// CheckConfiguredID reports why id cannot name a client the operator
// configures, or nil. Such ids share one namespace with the clients that
// register or identify themselves, so they are kept apart by their form:
// letters, digits and . _ ~ - only (no ":" or "/", so never a metadata
// document URL nor a user's provider:id subject), and never the form of a
// registered id (22 base64url characters), so registration can never
// mint one.
func CheckConfiguredID(id string) error {
	switch {
	case id == "" || len(id) > maxConfiguredIDLength:
		return fmt.Errorf("client id %q must have 1 to %d characters", id, maxConfiguredIDLength)
	case strings.IndexFunc(id, func(r rune) bool { return !isIDChar(r) }) >= 0:
		return fmt.Errorf("client id %q may only hold letters, digits and . _ ~ -", id)
	case isRegisteredID(id):
		return fmt.Errorf("client id %q has the form of dynamically registered ids (22 letters, digits, - or _): add a . or ~, or change its length", id)
	}
	return nil
}

// isRegisteredID reports whether id has the form registration gives ids:
// as many characters, all of the base64url alphabet.
func isRegisteredID(id string) bool {
	return len(id) == base64.RawURLEncoding.EncodedLen(registeredIDBytes) &&
		strings.IndexFunc(id, func(r rune) bool { return !isIDChar(r) || r == '.' || r == '~' }) < 0
}

func isIDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '~' || r == '-'
}

// CheckSecretHash checks the form of a configured client's secret hash:
// the hex SHA-256 of the secret, as HashSecret gives it, in lower case.
// Plain secrets and slow hashes (bcrypt) are refused: see HashSecret.
func CheckSecretHash(hash string) error {
	if strings.HasPrefix(hash, "$2") {
		return errors.New("secret_hash: bcrypt hashes are not accepted; give the hex SHA-256 of a random secret of at least 32 bytes (printf %s \"$SECRET\" | sha256sum)")
	}
	if len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return errors.New("secret_hash: must be the hex SHA-256 (64 lower-case hex digits) of a random secret of at least 32 bytes, never the secret itself")
	}
	return nil
}

// CheckJWKS checks a configured client's inline JWK Set as a metadata
// document's is checked: one to 20 asymmetric public keys.
func CheckJWKS(raw []byte) error {
	_, err := parseJWKS(raw)
	return err
}
