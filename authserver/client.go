package authserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// errUnknownClient is returned for a client_id that names no client;
// errBlockedClient, which is one, for a client an operator blocked.
var (
	errUnknownClient = errors.New("unknown client")
	errBlockedClient = fmt.Errorf("%w: blocked by the operator", errUnknownClient)
)

// client returns a registered client, or the client described by the
// metadata document its client_id points to, unless an operator blocked
// it (see Admin.DeleteClient).
func (a *AuthServer) client(ctx context.Context, clientID string) (*clients.Client, error) {
	if clientID == "" || len(clientID) > 2048 {
		return nil, errUnknownClient
	}
	switch blocked, err := a.State.Clients.IsBlocked(ctx, clientID); {
	case err != nil:
		return nil, err
	case blocked:
		return nil, errBlockedClient
	}
	if clients.IsMetadataURL(clientID) {
		if a.Metadata == nil {
			return nil, errUnknownClient
		}
		c, err := a.Metadata.Client(ctx, clientID)
		if err != nil {
			return nil, fmt.Errorf("client metadata document: %w", err)
		}
		return c, nil
	}
	c, err := a.State.Clients.Get(ctx, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errUnknownClient
	}
	return c, err
}
