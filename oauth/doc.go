// Package oauth holds what every OAuth endpoint and the bearer gate answer
// with when they refuse a request: one error type with the RFC error codes,
// one writer of JSON responses (RFC 6749 section 5.2 for errors) and the
// WWW-Authenticate challenges (RFC 6750 section 3, RFC 9728 section 5.1).
package oauth
