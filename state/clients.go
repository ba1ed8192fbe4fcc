package state

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Clients stores the registered clients, the clients an operator blocked,
// the client assertions used (clients.UsedAssertions) and the count of
// registrations per hour.
type Clients struct {
	store storage.Store
}

// BlockedClient is the record of a client an operator blocked.
type BlockedClient struct {
	// Issuer is always stored empty: the record was once the admin API's
	// answer as it is, and stays byte for byte what older releases read.
	Issuer    string `json:"issuer"`
	ClientID  string `json:"client_id"`
	BlockedAt int64  `json:"blocked_at"`
}

// Get returns the registered client clientID, or storage.ErrNotFound.
func (c *Clients) Get(ctx context.Context, clientID string) (*clients.Client, error) {
	var client clients.Client
	if err := getJSON(ctx, c.store, keyClient+clientID, &client); err != nil {
		return nil, err
	}
	return &client, nil
}

// Save stores a registered client for ttl (NoExpiry: for good).
func (c *Clients) Save(ctx context.Context, client *clients.Client, ttl time.Duration) error {
	return putJSON(ctx, c.store, keyClient+client.ClientID, client, ttl)
}

// MarkUsed keeps a registered client for good once it obtained a token:
// clients that never finish a login expire, used ones never do.
func (c *Clients) MarkUsed(ctx context.Context, client *clients.Client) error {
	if client.Used || client.Metadata {
		return nil
	}
	client.Used = true
	return c.Save(ctx, client, storage.NoExpiry)
}

// Exists reports whether clientID is a registered client, readable or not.
func (c *Clients) Exists(ctx context.Context, clientID string) (bool, error) {
	return exists(ctx, c.store, keyClient+clientID)
}

// Delete deletes the registration of clientID.
func (c *Clients) Delete(ctx context.Context, clientID string) error {
	return c.store.Delete(ctx, keyClient+clientID)
}

// List returns the registered clients, skipping unreadable records.
func (c *Clients) List(ctx context.Context) ([]*clients.Client, error) {
	var out []*clients.Client
	err := c.store.List(ctx, keyClient, func(_ string, v []byte) error {
		var client clients.Client
		if json.Unmarshal(v, &client) == nil {
			out = append(out, &client)
		}
		return nil
	})
	return out, err
}

// blockedClientKey is where a client's block is recorded. The id is
// hashed: a metadata-document client_id is a URL of up to 2 KiB.
func blockedClientKey(clientID string) string { return keyBlockedClient + Hash(clientID) }

// IsBlocked reports whether an operator blocked clientID.
func (c *Clients) IsBlocked(ctx context.Context, clientID string) (bool, error) {
	return exists(ctx, c.store, blockedClientKey(clientID))
}

// Block refuses clientID from now on, for good.
func (c *Clients) Block(ctx context.Context, clientID string, at time.Time) error {
	return putJSON(ctx, c.store, blockedClientKey(clientID), BlockedClient{ClientID: clientID, BlockedAt: at.Unix()}, storage.NoExpiry)
}

// Unblock lets a blocked client back in; storage.ErrNotFound if it was
// not blocked.
func (c *Clients) Unblock(ctx context.Context, clientID string) error {
	_, err := c.store.Take(ctx, blockedClientKey(clientID))
	return err
}

// Blocked lists the blocked clients, skipping unreadable records.
func (c *Clients) Blocked(ctx context.Context) ([]BlockedClient, error) {
	var out []BlockedClient
	err := c.store.List(ctx, keyBlockedClient, func(_ string, v []byte) error {
		var b BlockedClient
		if json.Unmarshal(v, &b) == nil {
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

// CountRegistration counts one client registration in the hour that
// starts at hour, from all sources and instances, and returns the count.
func (c *Clients) CountRegistration(ctx context.Context, hour time.Time) (int64, error) {
	next := hour.Add(time.Hour)
	return c.store.Increment(ctx, keyRegistrations+strconv.FormatInt(hour.Unix(), 10), time.Until(next)+time.Minute)
}

// UseAssertion records the jti of a client assertion of clientID as used
// for ttl and reports whether it was not used before. The jti is hashed:
// it is client-chosen and may be long or unprintable.
func (c *Clients) UseAssertion(ctx context.Context, clientID, jti string, ttl time.Duration) (bool, error) {
	return c.useOnce(ctx, keyAssertionJTI+clientID+"/"+Hash(jti), ttl)
}

// UseIdentityAssertion records the jti of an identity assertion grant
// (ID-JAG) of the identity provider issuer as used for ttl and reports
// whether it was not used before: an ID-JAG is redeemed once, by whichever
// client and instance presents it first.
func (c *Clients) UseIdentityAssertion(ctx context.Context, issuer, jti string, ttl time.Duration) (bool, error) {
	return c.useOnce(ctx, keyIdentityAssertionJTI+Hash(issuer)+"/"+Hash(jti), ttl)
}

// useOnce creates the marker key for ttl and reports whether it was not
// there: of concurrent callers, exactly one is told so.
func (c *Clients) useOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	switch err := c.store.Create(ctx, key, []byte{1}, ttl); {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrConflict):
		return false, nil
	default:
		return false, err
	}
}
