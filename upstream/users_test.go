package upstream

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func hashPassword(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestUsers(t *testing.T) {
	aliceHash := hashPassword(t, "correct horse", bcrypt.MinCost)
	u, err := NewUsers(map[string]string{
		"alice": aliceHash,
		// $2y$ (PHP, htpasswd) is the same algorithm under another name.
		"bob": "$2y$" + strings.TrimPrefix(hashPassword(t, "hunter2", bcrypt.MinCost+1), "$2a$"),
		// Older Caddy versions printed the hash base64-encoded.
		"carol": base64.StdEncoding.EncodeToString([]byte(hashPassword(t, "s3cret", bcrypt.MinCost))),
	})
	if err != nil {
		t.Fatalf("NewUsers: %v", err)
	}
	if u.Name() != "users" {
		t.Errorf("Name() = %q", u.Name())
	}

	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "correct horse", true},
		{"bob", "hunter2", true},
		{"carol", "s3cret", true},
		{"alice", "wrong", false},
		{"alice", "", false},
		{"alice", "correct horse ", false},
		{"Alice", "correct horse", false}, // usernames are case-sensitive
		{"mallory", "correct horse", false},
		{"", "", false},
	} {
		id, err := u.CheckPassword(tc.user, tc.pw)
		if !tc.ok {
			if !errors.Is(err, ErrDenied) || id != nil {
				t.Errorf("CheckPassword(%q, %q) = %v, %v; want ErrDenied", tc.user, tc.pw, id, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("CheckPassword(%q, %q): %v", tc.user, tc.pw, err)
			continue
		}
		if want := (Identity{Subject: tc.user, Username: tc.user}); !identityEqual(*id, want) {
			t.Errorf("identity = %+v, want %+v", *id, want)
		}
	}

	// Unknown users are checked against a fake hash of the highest
	// configured cost, so they take as long as the slowest real user.
	if cost, err := bcrypt.Cost(u.fake); err != nil || cost != bcrypt.MinCost+1 {
		t.Errorf("fake hash cost = %d, %v; want %d", cost, err, bcrypt.MinCost+1)
	}
}

func TestNewUsersRejects(t *testing.T) {
	good := hashPassword(t, "pw", bcrypt.MinCost)
	for name, accounts := range map[string]map[string]string{
		"no accounts":    {},
		"empty username": {"": good},
		"plaintext":      {"alice": "password"},
		"truncated hash": {"alice": good[:30]},
		"bad cost":       {"alice": "$2a$99$" + good[7:]},
		"trailing junk":  {"alice": good + "x"},
		"argon2":         {"alice": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"},
		"md5 crypt":      {"alice": "$1$salt$qJH7.N4xYta3aEG/dfqo/0"},
		"base64 junk":    {"alice": base64.StdEncoding.EncodeToString([]byte("not a hash"))},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewUsers(accounts)
			if err == nil {
				t.Fatal("accepted")
			}
			t.Logf("error as expected: %v", err)
			for _, h := range accounts {
				if len(h) > 8 && strings.Contains(err.Error(), h) {
					t.Errorf("error echoes the hash: %v", err)
				}
			}
		})
	}
}

func TestCheckPasswordBoundsConcurrentWork(t *testing.T) {
	u, err := NewUsers(map[string]string{"alice": hashPassword(t, "correct horse", bcrypt.MinCost)})
	if err != nil {
		t.Fatal(err)
	}
	// Every slot is taken, as by a flood of guesses: a check gives up
	// after a bounded wait instead of queueing.
	for range cap(passwordChecks) {
		passwordChecks <- struct{}{}
	}
	start := time.Now()
	if id, err := u.CheckPassword("alice", "correct horse"); !errors.Is(err, ErrBusy) || id != nil {
		t.Errorf("with every slot taken: %v, %v; want ErrBusy", id, err)
	}
	if waited := time.Since(start); waited < passwordCheckWait || waited > passwordCheckWait+time.Second {
		t.Errorf("gave up after %v, want about %v", waited, passwordCheckWait)
	}
	<-passwordChecks // one check finishes
	if _, err := u.CheckPassword("alice", "correct horse"); err != nil {
		t.Errorf("with a free slot: %v", err)
	}
	for range cap(passwordChecks) - 1 {
		<-passwordChecks
	}
}
