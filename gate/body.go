package gate

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"sync"
)

// inspectedBody is a request body the gate read whole to inspect, handed
// on to the backend in its place. Its buffer goes back to bodyBuffers when
// it is closed; reads after that fail, so a reader that kept the body can
// never see the buffer's next request. Close may come from another
// goroutine than Read (http.RoundTripper), hence the lock.
type inspectedBody struct {
	mu     sync.Mutex
	bufp   *[]byte // where buf goes back to the pool
	buf    []byte
	reader bytes.Reader
	closed bool
}

// maxPooledBody is the largest buffer kept for reuse, so that a few large
// bodies do not stay in memory.
const maxPooledBody = 64 << 10

// bodyBuffers holds buffers between requests.
var bodyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// readBody reads body whole into a pooled buffer, up to maxInspectedBody.
func readBody(body io.Reader) (*inspectedBody, error) {
	bufp := bodyBuffers.Get().(*[]byte)
	buf := (*bufp)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 512)
		}
		n, err := body.Read(buf[len(buf):min(cap(buf), maxInspectedBody+1)])
		buf = buf[:len(buf)+n]
		switch {
		case len(buf) > maxInspectedBody:
			err = errBodyTooLarge
		case err == io.EOF:
			b := &inspectedBody{bufp: bufp, buf: buf}
			b.reader.Reset(buf)
			return b, nil
		case err != nil:
			err = errBadJSONRPC
		default:
			continue
		}
		putBuffer(bufp, buf)
		return nil, err
	}
}

// putBuffer returns buf to bodyBuffers in bufp, unless it grew too large.
func putBuffer(bufp *[]byte, buf []byte) {
	if cap(buf) <= maxPooledBody {
		*bufp = buf[:0]
		bodyBuffers.Put(bufp)
	}
}

func (b *inspectedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.reader.Read(p)
}

func (b *inspectedBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.reader.Reset(nil)
		putBuffer(b.bufp, b.buf)
		b.bufp, b.buf = nil, nil
	}
	return nil
}
