package dpop

import (
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func jwkJSON(k jwk.Key) (string, error) {
	buf, err := json.Marshal(k)
	return string(buf), err
}
