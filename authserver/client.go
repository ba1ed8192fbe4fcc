package authserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// errUnknownClient is returned for a client_id that names no client;
// errBlockedClient, which is one, for a client an operator blocked;
// errClientUnreadable when the state store could not say, which is no
// fault of the client's.
var (
	errUnknownClient    = errors.New("unknown client")
	errBlockedClient    = fmt.Errorf("%w: blocked by the operator", errUnknownClient)
	errClientUnreadable = errors.New("the client could not be read from the state store")
)

// clientDirectory finds the client a client_id names: a configured one, a
// registered one, or one described by the metadata document its client_id
// points to. Their ids never collide (clients.CheckConfiguredID).
type clientDirectory struct {
	clients *state.Clients
	// metadata is nil when metadata-document clients are disabled.
	metadata *clients.Fetcher
	// machines are the configured machine clients.
	machines map[string]*machineClient
}

// lookup returns the client clientID names, unless an operator blocked it
// (see Admin.DeleteClient).
func (d *clientDirectory) lookup(ctx context.Context, clientID string) (*clients.Client, error) {
	if clientID == "" || len(clientID) > 2048 {
		return nil, errUnknownClient
	}
	switch blocked, err := d.clients.IsBlocked(ctx, clientID); {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errClientUnreadable, err)
	case blocked:
		return nil, errBlockedClient
	}
	if m := d.machines[clientID]; m != nil {
		return m.client.Clone(), nil
	}
	if clients.IsMetadataURL(clientID) {
		if d.metadata == nil {
			return nil, errUnknownClient
		}
		c, err := d.metadata.Client(ctx, clientID)
		if err != nil {
			return nil, fmt.Errorf("client metadata document: %w", err)
		}
		return c, nil
	}
	c, err := d.clients.Get(ctx, clientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, errUnknownClient
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errClientUnreadable, err)
	}
	return c, nil
}
