package state

import "context"

// RevokeUser revokes every grant and access token of the user sub and
// returns how many grants and access tokens outside them there were.
func (s *Stores) RevokeUser(ctx context.Context, sub string) (int, error) {
	return s.revokeWhere(ctx, func(g *Grant) bool { return g.User.Subject == sub }, revocationMarkOfUser(sub), tokenOfUserPrefix(sub))
}

// RevokeClient revokes every grant and access token of a client, counted
// as RevokeUser counts.
func (s *Stores) RevokeClient(ctx context.Context, clientID string) (int, error) {
	return s.revokeWhere(ctx, func(g *Grant) bool { return g.ClientID == clientID }, revocationMarkOfClient(clientID), tokenOfClientPrefix(clientID))
}

// revokeWhere revokes the grants match selects and the access tokens
// indexed under tokenIndex, after writing the revocation mark under mark,
// so that no code issued before now issues anything (see
// Revocations.RevokedSince). It returns the number of grants plus that of
// the access tokens that belonged to none of them.
func (s *Stores) revokeWhere(ctx context.Context, match func(*Grant) bool, mark, tokenIndex string) (int, error) {
	if err := s.Revocations.mark(ctx, mark); err != nil {
		return 0, err
	}
	selected, err := s.Grants.List(ctx, match)
	if err != nil {
		return 0, err
	}
	revoked := 0
	ofGrants := map[string]bool{}
	for _, sel := range selected {
		g, err := s.Grants.Revoke(ctx, sel.ID)
		if err != nil {
			return revoked, err
		}
		if g == nil {
			continue // revoked meanwhile by someone else
		}
		revoked++
		for _, t := range g.AccessTokenIDs {
			ofGrants[t.ID] = true
		}
	}
	alone, err := s.Revocations.denyIndexed(ctx, tokenIndex, ofGrants)
	return revoked + alone, err
}
