package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/authserver"
)

func init() {
	caddy.RegisterModule(adminAPI{})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "mcp-auth",
		Usage: "sites|clients|grants|revoke|revoke-grant|delete-client|blocked-clients|unblock-client|rotate-keys|export|import [...] [--issuer <site>] [--address <admin address>] [--storage-path <dir> | --redis <url> [--redis-prefix <prefix>]]",
		Short: "Manages mcp_auth clients, grants and signing keys of a running Caddy; backs up and moves its state",
		Long: `
Talks to the admin API of a running Caddy (the same endpoint as caddy reload).

  caddy mcp-auth sites                   list the sites (their issuers)
  caddy mcp-auth clients                 list configured and registered clients
  caddy mcp-auth delete-client <id>      revoke a client's grants and tokens and
                                         delete it; a metadata-document client
                                         (a client_id URL) is blocked instead
  caddy mcp-auth blocked-clients         list blocked clients
  caddy mcp-auth unblock-client <id>     let a blocked client back in
  caddy mcp-auth grants [<sub>]          list grants, of one user or all
  caddy mcp-auth revoke <sub>            revoke every grant of a user
  caddy mcp-auth revoke-grant <id>       revoke one grant
  caddy mcp-auth rotate-keys             make the next signing key active now
  caddy mcp-auth rotate-keys --revoke    replace every signing key at once, after
                                         a leak: all issued tokens stop working

Each site keeps its own clients and grants. The commands act on every site
of the running config; --issuer (such as https://mcp.example.com) limits
them to one.
Client and grant ids may begin with "-": put them after "--", as in
caddy mcp-auth delete-client -- -x1y2.

  caddy mcp-auth export > backup.jsonl   write the whole state store
  caddy mcp-auth import < backup.jsonl   load a dump into an empty store

export and import open the store themselves: the Badger database in
--storage-path (default {caddy.AppDataDir}/mcp_auth; stop Caddy first, it
locks the directory), or Redis at --redis (a URL as the redis option takes,
or a placeholder such as {env.REDIS_URL}) under --redis-prefix.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("address", "", "Address of the administration API (default: localhost:2019)")
			cmd.Flags().String("issuer", "", "Only the site with this issuer (default: every site)")
			cmd.Flags().Bool("revoke", false, "rotate-keys: drop every current key, so tokens signed with them stop working")
			cmd.Flags().String("storage-path", "", "export, import: the Badger database directory (default: {caddy.AppDataDir}/mcp_auth)")
			cmd.Flags().String("redis", "", "export, import: the Redis URL, instead of a Badger database")
			cmd.Flags().String("redis-prefix", "", "export, import: the key prefix in Redis (default: mcp_auth:)")
			cmd.Args = cobra.RangeArgs(1, 2)
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdMCPAuth)
		},
	})
}

// running holds the Apps that started and have not stopped, oldest first.
// The admin API acts on the newest: during a reload the new config's App
// starts before the old one stops, and when a new config fails to load or
// start, the old config's App, still serving, stays the one acted on.
var running struct {
	sync.Mutex
	apps []*App
}

// currentApp returns the App of the running config, or nil.
func currentApp() *App {
	running.Lock()
	defer running.Unlock()
	if len(running.apps) == 0 {
		return nil
	}
	return running.apps[len(running.apps)-1]
}

// setRunning adds a to the running Apps, or removes it.
func (a *App) setRunning(on bool) {
	running.Lock()
	defer running.Unlock()
	running.apps = slices.DeleteFunc(running.apps, func(other *App) bool { return other == a })
	if on {
		running.apps = append(running.apps, a)
	}
}

// adminAPI serves mcp_auth's admin endpoints under /mcp_auth/, protected
// like the rest of Caddy's admin API:
//
//	GET    /mcp_auth/sites
//	GET    /mcp_auth/clients
//	DELETE /mcp_auth/clients/<client_id>
//	GET    /mcp_auth/blocked-clients
//	DELETE /mcp_auth/blocked-clients/<client_id>
//	GET    /mcp_auth/grants[?sub=<sub>]
//	DELETE /mcp_auth/grants?sub=<sub>
//	DELETE /mcp_auth/grants/<id>
//	POST   /mcp_auth/keys/rotate[?revoke=true]
//
// Each site's authorization server keeps its own clients, grants and
// tokens: the endpoints act on every site of the running config, or on
// one with ?issuer=<issuer>. Listings name each entry's issuer. Deleting
// a client revokes its grants and tokens, and blocks a metadata-document
// client (a client_id URL) until it is unblocked. Every change is
// written to the audit log.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mcp_auth",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/mcp_auth/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func apiError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	app := currentApp()
	if app == nil || app.store == nil {
		return apiError(http.StatusServiceUnavailable, "mcp_auth is not running")
	}
	query := r.URL.Query()
	var issuer string
	if raw := query.Get("issuer"); raw != "" {
		var err error
		if issuer, err = authserver.CanonicalIssuer(raw); err != nil {
			return apiError(http.StatusBadRequest, "%v", err)
		}
	}
	sites := app.siteAdmins(issuer)
	if issuer != "" && len(sites) == 0 {
		return apiError(http.StatusNotFound, "no mcp_auth site has the issuer %s", issuer)
	}
	ctx := r.Context()
	// The escaped path, unescaped once: a client_id is a URL and may hold
	// escapes of its own.
	path := strings.Trim(strings.TrimPrefix(r.URL.EscapedPath(), "/mcp_auth/"), "/")
	resource, id, _ := strings.Cut(path, "/")
	id, err := url.PathUnescape(id)
	if err != nil {
		return apiError(http.StatusBadRequest, "malformed id in the path")
	}
	var (
		result any
		action string // what the audit log records; empty for reads
		target = []zap.Field{zap.String("by", "admin API"), zap.String("issuer", issuer)}
	)
	switch {
	case resource == "sites" && id == "" && r.Method == http.MethodGet:
		list := []map[string]string{}
		for _, site := range sites {
			list = append(list, map[string]string{"issuer": site.Issuer})
		}
		result = list
	case resource == "clients" && id == "" && r.Method == http.MethodGet:
		result, err = collect(sites, func(site *authserver.Admin) ([]authserver.ClientInfo, error) { return site.Clients(ctx) })
	case resource == "clients" && id != "" && r.Method == http.MethodDelete:
		action, target = "client deleted", append(target, zap.String("client_id", id))
		deletions := []*authserver.ClientDeletion{}
		err = everySite(sites, func(site *authserver.Admin) error {
			d, err := site.DeleteClient(ctx, id)
			if err == nil {
				deletions = append(deletions, d)
			}
			return err
		})
		target = append(target, zap.Any("result", deletions))
		result = deletions
	case resource == "blocked-clients" && id == "" && r.Method == http.MethodGet:
		result, err = collect(sites, func(site *authserver.Admin) ([]authserver.BlockedClient, error) { return site.BlockedClients(ctx) })
	case resource == "blocked-clients" && id != "" && r.Method == http.MethodDelete:
		action, target = "client unblocked", append(target, zap.String("client_id", id))
		err = everySite(sites, func(site *authserver.Admin) error { return site.UnblockClient(ctx, id) })
		result = map[string]string{"unblocked": id}
	case resource == "grants" && id == "" && r.Method == http.MethodGet:
		sub := query.Get("sub")
		result, err = collect(sites, func(site *authserver.Admin) ([]authserver.GrantInfo, error) { return site.Grants(ctx, sub) })
	case resource == "grants" && id == "" && r.Method == http.MethodDelete:
		action, target = "user revoked", append(target, zap.String("sub", query.Get("sub")))
		total := 0
		for _, site := range sites {
			n, serr := site.RevokeUser(ctx, query.Get("sub"))
			if total += n; serr != nil {
				err = serr
				break
			}
		}
		target = append(target, zap.Int("revoked", total))
		result = map[string]int{"revoked": total}
	case resource == "grants" && id != "" && r.Method == http.MethodDelete:
		action, target = "grant revoked", append(target, zap.String("grant_id", id))
		err = everySite(sites, func(site *authserver.Admin) error { return site.RevokeGrant(ctx, id) })
		result = map[string]string{"revoked": id}
	case resource == "keys" && id == "rotate" && r.Method == http.MethodPost:
		revoke := false
		if raw := query.Get("revoke"); raw != "" {
			if revoke, err = strconv.ParseBool(raw); err != nil {
				return apiError(http.StatusBadRequest, "revoke=%q is not true or false", raw)
			}
		}
		result, err = app.rotateKeys(ctx, revoke, "admin API")
		// rotateKeys audits a rotation; a failed one is audited below.
		if err != nil {
			action = "signing key rotation"
		}
	default:
		return apiError(http.StatusNotFound, "no such mcp_auth endpoint or method: %s %s", r.Method, r.URL.Path)
	}
	if action != "" {
		// Every change an operator makes is audited, failed ones too.
		if err != nil {
			action += " failed"
			target = append(target, zap.Error(err))
		}
		app.logger.Named("audit").Info(action, target...)
	}
	switch {
	case errors.Is(err, authserver.ErrNotFound):
		return apiError(http.StatusNotFound, "%s not found", id)
	case err != nil:
		return apiError(http.StatusBadRequest, "%v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(result)
}

// collect concatenates what list returns for each site.
func collect[T any](sites []*authserver.Admin, list func(*authserver.Admin) ([]T, error)) ([]T, error) {
	out := []T{}
	for _, site := range sites {
		part, err := list(site)
		if err != nil {
			return nil, err
		}
		out = append(out, part...)
	}
	return out, nil
}

// everySite applies act to each site that knows the object it names: it
// fails with authserver.ErrNotFound only if no site does.
func everySite(sites []*authserver.Admin, act func(*authserver.Admin) error) error {
	found := false
	for _, site := range sites {
		switch err := act(site); {
		case errors.Is(err, authserver.ErrNotFound):
		case err != nil:
			return err
		default:
			found = true
		}
	}
	if !found {
		return authserver.ErrNotFound
	}
	return nil
}

// cmdMCPAuth runs `caddy mcp-auth ...` against the admin API.
func cmdMCPAuth(fl caddycmd.Flags) (int, error) {
	args := fl.Args()
	if args[0] == "export" || args[0] == "import" {
		return cmdDump(context.Background(), fl, args[0], os.Stdin, os.Stdout, os.Stderr)
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, "", "")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	arg := func() (string, error) {
		if len(args) < 2 || args[1] == "" {
			return "", fmt.Errorf("%s needs an argument", args[0])
		}
		return args[1], nil
	}
	var method, uri string
	switch args[0] {
	case "sites":
		method, uri = http.MethodGet, "/mcp_auth/sites"
	case "clients":
		method, uri = http.MethodGet, "/mcp_auth/clients"
	case "delete-client":
		id, err := arg()
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		method, uri = http.MethodDelete, "/mcp_auth/clients/"+url.PathEscape(id)
	case "blocked-clients":
		method, uri = http.MethodGet, "/mcp_auth/blocked-clients"
	case "unblock-client":
		id, err := arg()
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		method, uri = http.MethodDelete, "/mcp_auth/blocked-clients/"+url.PathEscape(id)
	case "grants":
		method, uri = http.MethodGet, "/mcp_auth/grants"
		if len(args) == 2 {
			uri += "?sub=" + url.QueryEscape(args[1])
		}
	case "revoke":
		sub, err := arg()
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		method, uri = http.MethodDelete, "/mcp_auth/grants?sub="+url.QueryEscape(sub)
	case "revoke-grant":
		id, err := arg()
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		method, uri = http.MethodDelete, "/mcp_auth/grants/"+url.PathEscape(id)
	case "rotate-keys":
		method, uri = http.MethodPost, "/mcp_auth/keys/rotate"
		if fl.Bool("revoke") {
			uri += "?revoke=true"
		}
	default:
		return caddy.ExitCodeFailedStartup, fmt.Errorf("unknown mcp-auth command %q", args[0])
	}
	if issuer := fl.String("issuer"); issuer != "" {
		sep := "?"
		if strings.Contains(uri, "?") {
			sep = "&"
		}
		uri += sep + "issuer=" + url.QueryEscape(issuer)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, nil)
	if err != nil {
		return caddy.ExitCodeFailedQuit, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(os.Stdout, resp.Body)
	return caddy.ExitCodeSuccess, err
}

// Interface guard
var _ caddy.AdminRouter = (*adminAPI)(nil)
