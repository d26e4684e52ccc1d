// Package bufpool recycles byte buffers for encoding on the message path:
// a buffer is filled, its bytes are copied away (into the engine, the HTTP
// response, a hash), and it goes back for the next message.
package bufpool

import "sync"

// Pool hands out empty buffers of at least its initial capacity and takes
// them back unless they grew past its limit (one huge message must not
// pin a huge buffer).
type Pool struct {
	p   sync.Pool
	max int
}

// New returns a pool of buffers starting at size bytes of capacity and
// kept up to max.
func New(size, max int) *Pool {
	p := &Pool{max: max}
	p.p.New = func() any { b := make([]byte, 0, size); return &b }
	return p
}

// Get returns a buffer to append to: *bp is empty.
func (p *Pool) Get() (bp *[]byte) {
	bp = p.p.Get().(*[]byte)
	*bp = (*bp)[:0]
	return bp
}

// Put takes back bp with b, what was appended to *bp (its array may have
// grown); neither may be used afterwards. Reusing bp keeps Get and Put
// free of allocations.
func (p *Pool) Put(bp *[]byte, b []byte) {
	if cap(b) <= p.max {
		*bp = b[:0]
		p.p.Put(bp)
	}
}
