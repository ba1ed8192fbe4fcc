package mcpauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// dumpStore is a store that `caddy mcp-auth export` and `import` open
// themselves, without a running Caddy.
type dumpStore interface {
	storage.Dumper
	Close() error
	String() string
}

// cmdDump runs `caddy mcp-auth export`, which writes the store that the
// flags name to out, or `caddy mcp-auth import`, which reads a dump from in
// into it. Messages go to log.
func cmdDump(ctx context.Context, fl caddycmd.Flags, command string, in io.Reader, out, log io.Writer) (int, error) {
	store, err := openDumpStore(ctx, fl.String("storage-path"), fl.String("redis"), fl.String("redis-prefix"), command == "export")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer store.Close()
	var n int
	if command == "export" {
		n, err = storage.Export(ctx, store, out)
	} else {
		n, err = storage.Import(ctx, store, in)
	}
	if err != nil {
		return caddy.ExitCodeFailedQuit, err
	}
	if err := store.Close(); err != nil {
		return caddy.ExitCodeFailedQuit, err
	}
	verb := map[string]string{"export": "exported %d entries from %s\n", "import": "imported %d entries into %s\n"}[command]
	fmt.Fprintf(log, verb, n, store)
	return caddy.ExitCodeSuccess, nil
}

// openDumpStore opens the Badger database at storagePath, or in the
// default directory, or the Redis store at redisURL under prefix, as the
// mcp_auth global option would. The URL and prefix may hold {env.*}
// placeholders, which keep a password off the command line. If mustExist
// is set, a missing Badger directory is an error rather than a new store.
func openDumpStore(ctx context.Context, storagePath, redisURL, prefix string, mustExist bool) (dumpStore, error) {
	repl := caddy.NewReplacer()
	redisURL, prefix = repl.ReplaceKnown(redisURL, ""), repl.ReplaceKnown(prefix, "")
	switch {
	case redisURL != "" && storagePath != "":
		return nil, errors.New("--storage-path and --redis are mutually exclusive")
	case prefix != "" && redisURL == "":
		return nil, errors.New("--redis-prefix needs --redis")
	case redisURL != "":
		return storage.OpenRedis(ctx, redisURL, prefix, nil)
	}
	if storagePath == "" {
		storagePath = filepath.Join(caddy.AppDataDir(), "mcp_auth")
	}
	// Badger would create a missing directory: an export of a mistyped
	// path must fail instead of exporting an empty store.
	if _, err := os.Stat(storagePath); err != nil && mustExist {
		return nil, fmt.Errorf("storage path: %w", err)
	}
	b, err := storage.OpenBadger(storagePath, nil)
	if err != nil {
		return nil, err
	}
	return badgerAt{b, storagePath}, nil
}

// badgerAt names a Badger store by its directory in messages.
type badgerAt struct {
	*storage.Badger
	dir string
}

func (b badgerAt) String() string { return "badger database " + b.dir }
