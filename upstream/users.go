package upstream

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Users checks passwords against a fixed list of accounts with bcrypt
// hashes. It is safe for concurrent use.
type Users struct {
	hashes map[string][]byte
	// fake is compared against when the user does not exist, so that
	// unknown and known users cost the same bcrypt work.
	fake []byte
}

// NewUsers returns a provider for accounts, which maps usernames
// (case-sensitive) to bcrypt hashes as printed by `caddy hash-password`
// ($2a$, $2b$ or $2y$). Base64-encoded hashes, which older Caddy versions
// printed, are accepted too. Every hash is checked here so a typo fails at
// configuration time, not at login.
func NewUsers(accounts map[string]string) (*Users, error) {
	if len(accounts) == 0 {
		return nil, errors.New("users: no accounts configured")
	}
	u := &Users{hashes: make(map[string][]byte, len(accounts))}
	maxCost := 0
	for name, hash := range accounts {
		if name == "" {
			return nil, errors.New("users: empty username")
		}
		h, cost, err := parseBcrypt(hash)
		if err != nil {
			// The hash itself is not echoed: it is a secret of sorts.
			return nil, fmt.Errorf("users: password hash of %q: %w", name, err)
		}
		u.hashes[name] = h
		maxCost = max(maxCost, cost)
	}
	u.fake = fakeHash(maxCost)
	return u, nil
}

// parseBcrypt decodes a configured hash and returns it with its cost.
func parseBcrypt(s string) ([]byte, int, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "$") {
		// Caddy before 2.5-ish printed the hash base64-encoded.
		if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
			s = string(dec)
		}
	}
	if !strings.HasPrefix(s, "$2a$") && !strings.HasPrefix(s, "$2b$") && !strings.HasPrefix(s, "$2y$") {
		return nil, 0, errors.New("not a bcrypt hash (want $2a$, $2b$ or $2y$, as printed by caddy hash-password)")
	}
	// bcrypt.Cost checks only the prefix; a hash cut short or with junk
	// appended while copying would parse and then never match.
	if len(s) != 60 {
		return nil, 0, fmt.Errorf("malformed bcrypt hash: %d characters, want 60", len(s))
	}
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil {
		return nil, 0, fmt.Errorf("malformed bcrypt hash: %v", err)
	}
	return []byte(s), cost, nil
}

// fakeHashes caches one throwaway hash per cost: generating one at cost 14
// takes about a second, too long to repeat on every config reload.
var fakeHashes sync.Map // int → []byte

// fakeHash returns a hash of a random password at the given cost.
func fakeHash(cost int) []byte {
	if h, ok := fakeHashes.Load(cost); ok {
		return h.([]byte)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		// cost came from a hash bcrypt.Cost accepted, and the password is
		// short, so this cannot happen.
		panic("users: generating fake bcrypt hash: " + err.Error())
	}
	actual, _ := fakeHashes.LoadOrStore(cost, h)
	return actual.([]byte)
}

// Name implements PasswordChecker.
func (u *Users) Name() string { return "users" }

// passwordChecks bounds the bcrypt comparisons running at once in this
// process, whatever site they are for: each takes a core for tens of
// milliseconds to a second, so password guessing could otherwise take
// every core.
var passwordChecks = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// passwordCheckWait is how long a password check waits for its turn
// before ErrBusy: about one comparison at a high cost.
const passwordCheckWait = time.Second

// ErrBusy is returned when too many passwords are being checked at once;
// the user should try again in a moment.
var ErrBusy = errors.New("too many password checks at once")

// CheckPassword implements PasswordChecker. An unknown user costs one
// bcrypt comparison against a fake hash of the highest configured cost,
// like a known one, so response time does not reveal which usernames
// exist (as in Caddy's basic_auth).
func (u *Users) CheckPassword(username, password string) (*Identity, error) {
	hash, known := u.hashes[username]
	if !known {
		hash = u.fake
	}
	wait := time.NewTimer(passwordCheckWait)
	defer wait.Stop()
	select {
	case passwordChecks <- struct{}{}:
		defer func() { <-passwordChecks }()
	case <-wait.C:
		return nil, ErrBusy
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if !known || err != nil {
		return nil, ErrDenied
	}
	return &Identity{Subject: username, Username: username}, nil
}
