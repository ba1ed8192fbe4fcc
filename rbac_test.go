package mcpauth

import (
	"testing"
)

// The todo-manager example: everyone may use the tools, only alice gets
// the admin scope; tool_scope then keeps bob from the admin tool.
func TestScopeGrantsPerUser(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	startCaddy(t, asSite(t, storagePath, logDir, `upstream users {
			alice `+aliceHash+`
			bob `+aliceHash+`
		}
		grant_scope mcp:tools to everyone
		grant_scope mcp:admin to users alice`))

	for user, want := range map[string]string{"alice": "mcp:tools mcp:admin", "bob": "mcp:tools"} {
		b := newBrowser(t)
		b.Username, b.Password = user, "correct horse"
		transport, _ := sdkClient(t, b, "")
		if id := whoami(t, transport); id.User != "users:"+user || id.Scopes != want {
			t.Errorf("%s: backend saw %+v, want scopes %q", user, id, want)
		}
	}
}
