package authserver

import (
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
)

// MachineClient is a client the operator configured for the client
// credentials grant (OAuth 2.1 section 4.2, the MCP extension
// io.modelcontextprotocol/oauth-client-credentials): a program that acts
// for itself, with no user. Its tokens' sub is its client_id.
type MachineClient struct {
	// ID is its client_id; see clients.CheckConfiguredID.
	ID string
	// SecretHash is the hex SHA-256 of its secret (client_secret_basic or
	// client_secret_post); or JWKSURI or JWKS, the raw JSON of a JWK Set,
	// hold its public keys (private_key_jwt, RFC 7523). Exactly one is set.
	SecretHash string
	JWKSURI    string
	JWKS       []byte
	// Scopes are the scopes it may be granted; none: every scope of the
	// resources it may use.
	Scopes []string
	// Resources are the paths of the protected resources it may get tokens
	// for, the first its default; none: every resource.
	Resources []string
	// AccessTokenLifetime of its tokens; zero: Config.AccessTokenLifetime.
	AccessTokenLifetime time.Duration
}

// authMethod is the token_endpoint_auth_method of the client: with a
// secret, client_secret_basic (client_secret_post is accepted too).
func (mc *MachineClient) authMethod() string {
	if mc.SecretHash != "" {
		return clients.AuthMethodClientSecretBasic
	}
	return clients.AuthMethodPrivateKeyJWT
}

// machineClient is a MachineClient resolved against the server's resources.
type machineClient struct {
	client *clients.Client
	// scopes is nil for every scope of a resource; resources nil for
	// every resource.
	scopes    []string
	resources []*gate.Resource
	lifetime  time.Duration
}

// newMachineClients checks the configured clients against the server's
// resources and indexes them by client_id.
func newMachineClients(list []MachineClient, resources gate.Resources) (map[string]*machineClient, error) {
	out := make(map[string]*machineClient, len(list))
	for _, mc := range list {
		m, err := newMachineClient(mc, resources)
		if err != nil {
			return nil, fmt.Errorf("client %s: %w", mc.ID, err)
		}
		if out[mc.ID] != nil {
			return nil, fmt.Errorf("client %s: configured twice", mc.ID)
		}
		out[mc.ID] = m
	}
	return out, nil
}

func newMachineClient(mc MachineClient, resources gate.Resources) (*machineClient, error) {
	if err := clients.CheckConfiguredID(mc.ID); err != nil {
		return nil, err
	}
	c := &clients.Client{ClientID: mc.ID, GrantTypes: []string{clients.GrantClientCredentials}, Configured: true, Used: true}
	given := 0
	for _, set := range []bool{mc.SecretHash != "", mc.JWKSURI != "", len(mc.JWKS) > 0} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, fmt.Errorf("give exactly one of secret_hash, jwks_uri and jwks")
	}
	c.TokenEndpointAuthMethod = mc.authMethod()
	switch {
	case mc.SecretHash != "":
		if err := clients.CheckSecretHash(mc.SecretHash); err != nil {
			return nil, err
		}
		c.SecretHash = mc.SecretHash
	case mc.JWKSURI != "":
		if u, err := url.Parse(mc.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
			return nil, fmt.Errorf("jwks_uri %q must be an https URL", mc.JWKSURI)
		}
		c.JWKSURI = mc.JWKSURI
	default:
		if err := clients.CheckJWKS(mc.JWKS); err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		c.JWKS = mc.JWKS
	}
	m := &machineClient{client: c, scopes: mc.Scopes, lifetime: mc.AccessTokenLifetime}
	for _, p := range mc.Resources {
		i := slices.IndexFunc(resources, func(r *gate.Resource) bool { return r.Path == p || (r.Path == "" && p == "/") })
		if i < 0 {
			return nil, fmt.Errorf("resources: %q is not a resource of this site", p)
		}
		m.resources = append(m.resources, resources[i])
	}
	usable := m.resources
	if usable == nil {
		usable = resources
	}
	for _, sc := range mc.Scopes {
		if !slices.ContainsFunc(usable, func(r *gate.Resource) bool { return slices.Contains(r.Scopes, sc) }) {
			return nil, fmt.Errorf("scopes: %q is not a scope of the resources the client may use", sc)
		}
	}
	return m, nil
}

// mayUse reports whether the client may get tokens for res.
func (m *machineClient) mayUse(res *gate.Resource) bool {
	return m.resources == nil || slices.Contains(m.resources, res)
}

// defaultResource is the resource of a request that names none; nil
// leaves it to the server's default.
func (m *machineClient) defaultResource() *gate.Resource {
	if len(m.resources) == 0 {
		return nil
	}
	return m.resources[0]
}

// offered returns the scopes of res the client may be granted, in the
// resource's order.
func (m *machineClient) offered(res *gate.Resource) []string {
	if m.scopes == nil {
		return res.Scopes
	}
	return slices.DeleteFunc(slices.Clone(res.Scopes), func(sc string) bool { return !slices.Contains(m.scopes, sc) })
}
