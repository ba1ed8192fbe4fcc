package state

// Key prefixes of an authorization server's key space. The rest of a key
// is a record's id or the Hash of a secret or of an id that may hold any
// character.
const (
	keyClient   = "client/"
	keyRequest  = "request/"
	keyLogin    = "login/"
	keyCode     = "code/"
	keyUsedCode = "used-code/"
	keyGrant    = "grant/"
	keyRefresh  = "refresh/"
	keyDenied   = "denied-jti/"
	keyConsent  = "consent/"
	// keyUser holds the profile of each user who logged in, for /userinfo.
	keyUser = "user/"
	// keyRegistrations counts registrations per hour, from all sources.
	keyRegistrations = "registrations/"
	// Every live access token is indexed by its user and by its client,
	// so that revoking either finds the tokens no grant records.
	keyTokenOfUser   = "token-of-user/"
	keyTokenOfClient = "token-of-client/"
	// A revocation of all of a user's or client's tokens leaves a mark
	// that code redemptions running meanwhile notice (see Revocations).
	keyRevokedUser   = "revoked-user/"
	keyRevokedClient = "revoked-client/"
	// keyBlockedClient holds the clients an operator blocked, by the hash
	// of their client_id; metadata-document clients have no record to
	// delete, so they are kept out this way. It never expires.
	keyBlockedClient = "blocked-client/"
	// keyAssertionJTI holds, per client, the Hash of each jti of a client
	// assertion used, until the assertion expires.
	keyAssertionJTI = "assertion-jti/"
	// keyIdentityAssertionJTI holds, per enterprise identity provider (the
	// Hash of its issuer), the Hash of each jti of an identity assertion
	// grant redeemed, until the grant expires.
	keyIdentityAssertionJTI = "id-jag-jti/"
	// keyLoginPin binds a GitHub login (lowercased) to the subject that
	// first logged in with it; it never expires.
	keyLoginPin = "login-pin/github/"
	// keyDPoPProof holds the Hash of the key thumbprint and jti of each
	// DPoP proof used at the token endpoint, until it is too old anyway.
	keyDPoPProof = "dpop-proof/"
	// The login limits; the rest of each key is loginSubjectUser or
	// loginSubjectSource and the Hash of the username or source.
	keyLoginFailures = "login-failures/"
	keyLoginWait     = "login-wait/"
	// keyLoginAttempts counts the password posts of one login.
	keyLoginAttempts = "login-attempts/"
	// keyUpstreamToken holds each login's sealed token at the identity
	// provider (see UpstreamTokens); keyUpstreamRefreshLock, while one
	// instance refreshes it, the lock on doing so.
	keyUpstreamToken       = "upstream-token/"
	keyUpstreamRefreshLock = "upstream-refresh-lock/"
)

// What the login limits count.
const (
	loginSubjectUser   = "user/"
	loginSubjectSource = "source/"
)

// keyDPoPNonceKey holds, in the store every site shares, the key DPoP
// server nonces are MACed with.
const keyDPoPNonceKey = "dpop-nonce-key"

// keySession is the prefix, in the store every site shares, of the
// bindings of MCP sessions (see Sessions).
const keySession = "session/"

// Kind is a kind of record, named by the prefix of its keys, for tests
// and tools that look at a key space, or at stored bytes, themselves.
type Kind string

// The kinds of record that tests look at.
const (
	KindClient      Kind = keyClient
	KindRequest     Kind = keyRequest
	KindLogin       Kind = keyLogin
	KindCode        Kind = keyCode
	KindGrant       Kind = keyGrant
	KindRefresh     Kind = keyRefresh
	KindDenied      Kind = keyDenied
	KindTokenOfUser Kind = keyTokenOfUser
	// The sealed tokens at the identity provider.
	KindUpstreamToken Kind = keyUpstreamToken
	// The login limits of usernames.
	KindUserLoginFailures Kind = keyLoginFailures + loginSubjectUser
	KindUserLoginWait     Kind = keyLoginWait + loginSubjectUser
)

// Key returns the key of the record of this kind for id: the kind's
// prefix and the id, or the Hash of the id for kinds keyed by a secret (a
// code, a refresh token, a login's state) or by a username.
func (k Kind) Key(id string) string {
	switch k {
	case KindLogin, KindCode, KindRefresh, KindUserLoginFailures, KindUserLoginWait:
		return string(k) + Hash(id)
	}
	return string(k) + id
}
