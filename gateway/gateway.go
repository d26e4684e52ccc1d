// Package gateway is kefu's edge: the fasthttp server, the channel adapters
// (WeChat Official Account, WeChat Customer Service, WeCom app, signed JSON),
// verify/decrypt, dedupe, durable accept, the passive-reply handover, the
// outbound sender with quotas and dead letters, and the access-token cache.
//
// The request path follows one discipline (STYLE.md §7): verify → cap body →
// copy what is needed out of the fasthttp ctx → check the dedupe key →
// answer within the passive budget and store the outcome in one durable
// write before replying, or claim and durably enqueue the message, ack, and
// send through the API later (accept.go).
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"kefu/conv"
	"kefu/engine"
)

// Handler decides what to say to an accepted message. The app wires the
// router (handoff → surveys → bot) behind it. Replies are sent in order; the
// first may go back as the passive reply when the channel allows it.
type Handler interface {
	Handle(ctx context.Context, msg conv.Message) ([]conv.Reply, error)
}

// Deferrer is implemented by handlers that have work the answer does not
// depend on (transcripts, contact tracking). The gateway runs after once the
// answer is handed over — the passive reply does not wait for it — and
// before the message leaves the inbox.
type Deferrer interface {
	HandleDeferred(ctx context.Context, msg conv.Message) (replies []conv.Reply, after func(context.Context), err error)
}

// ReadAhead is implemented by handlers that know which engine keys they
// will Get for a message (the router: the customer's handoff, survey and
// bot state). On an engine where every read is a round trip (Redis,
// engine.Prefetcher) the gateway reads them together with the message's
// dedupe record, in one round trip, and hands them to the handler through
// its context (engine.WithPrefetched); a key the handler does not read
// costs nothing but its share of that round trip.
type ReadAhead interface {
	ReadAheadKeys(msg conv.Message) []string
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg conv.Message) ([]conv.Reply, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, msg conv.Message) ([]conv.Reply, error) {
	return f(ctx, msg)
}

// Gateway is the edge server plus the background services it needs.
type Gateway struct {
	cfg     Config
	eng     engine.Engine
	handler Handler
	// prefetch and readAhead are set when both the engine and the handler
	// support reading ahead (see ReadAhead).
	prefetch  engine.Prefetcher
	readAhead ReadAhead
	log       *slog.Logger
	metrics   *Metrics
	clock     atomic.Pointer[func() time.Time]
	instance  string
	seq       atomic.Uint64

	channels map[string]*channel // by route "oa/demo", "kf/x", "app/y", "im/z"
	byName   map[string]*channel

	inflight sync.Map // msg ID → *handover, for retries that arrive at this instance
	kfNudge  chan struct{}
	work     sync.WaitGroup
	workers  *workers // runs accepted messages' handling (workers.go)
	draining atomic.Bool

	Sender *Sender
	Tokens *Tokens
	// AdminToken guards the /admin endpoints (dead letters); empty disables them.
	AdminToken string
	// AdminRoutes adds operator endpoints of other parts of the product
	// under /admin, keyed by "METHOD /admin/path", behind the same token.
	AdminRoutes map[string]fasthttp.RequestHandler
}

// Options are the optional collaborators of a Gateway.
type Options struct {
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Now replaces the clock in tests.
	Now func() time.Time
}

// New builds a Gateway. It validates cfg and prepares every channel's keys.
func New(cfg Config, eng engine.Engine, h Handler, opts Options) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	g := &Gateway{
		cfg:      cfg,
		eng:      eng,
		handler:  h,
		log:      opts.Logger.With("component", "gateway"),
		instance: hex.EncodeToString(id[:]),
		channels: map[string]*channel{},
		byName:   map[string]*channel{},
		kfNudge:  make(chan struct{}, 1),
		workers:  newWorkers(10 * time.Second),
	}
	if p, ok := eng.(engine.Prefetcher); ok {
		if ra, ok := h.(ReadAhead); ok {
			g.prefetch, g.readAhead = p, ra
		}
	}
	g.SetClock(opts.Now)
	g.metrics = newMetrics(opts.Registry, g)
	for _, cc := range cfg.Channels {
		ch, err := newChannel(cc)
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", cc.Name, err)
		}
		g.channels[ch.route] = ch
		g.byName[ch.cfg.Name] = ch
	}
	g.Tokens = newTokens(cfg, eng, g.log, g.metrics)
	g.Sender = newSender(g)
	return g, nil
}

// httpError carries the HTTP status an error maps to.
type httpError struct {
	status int
	msg    string
	err    error
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) Unwrap() error { return e.err }

func errStatus(status int, msg string, err error) error {
	return &httpError{status: status, msg: msg, err: err}
}

// HTTPHandler returns the fasthttp handler serving every route.
func (g *Gateway) HTTPHandler() fasthttp.RequestHandler {
	return g.serve
}

// serve is the single adapter that maps handler errors to status, body,
// log level and metrics (STYLE.md §5).
func (g *Gateway) serve(ctx *fasthttp.RequestCtx) {
	defer func() {
		// A parser bug must never take the process down; answer 500 so
		// WeChat retries and log loudly.
		if r := recover(); r != nil {
			g.log.Error("panic in handler", "panic", fmt.Sprint(r), "path", string(ctx.Path()))
			ctx.ResetBody()
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		}
	}()
	path := string(ctx.Path())
	switch path {
	case "/healthz":
		ctx.SetBodyString("ok")
		return
	case "/readyz":
		g.readyz(ctx)
		return
	}
	if strings.HasPrefix(path, "/admin/") {
		g.serveAdmin(ctx, path)
		return
	}
	route, ok := routeOf(path)
	if !ok {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetBodyString("not found\n")
		return
	}
	ch, ok := g.channels[route]
	if !ok {
		g.metrics.requests.WithLabelValues("unknown", "not_found").Inc()
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetBodyString("unknown channel\n")
		return
	}
	start := time.Now()
	outcome, err := g.serveChannel(ctx, ch)
	if err != nil {
		status := fasthttp.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			status = he.status
		}
		if outcome == "" {
			outcome = outcomeOf(status)
		}
		level := slog.LevelDebug // expected 4xx are noise at info
		if status >= 500 {
			level = slog.LevelError
		}
		g.log.Log(context.Background(), level, "callback rejected", "channel", ch.cfg.Name, "status", status, "err", err)
		ctx.ResetBody()
		ctx.SetStatusCode(status)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString(strings.SplitN(err.Error(), "\n", 2)[0] + "\n")
	}
	g.metrics.requests.WithLabelValues(ch.cfg.Name, outcome).Inc()
	g.metrics.ackSeconds.WithLabelValues(ch.cfg.Name).Observe(time.Since(start).Seconds())
}

func outcomeOf(status int) string {
	switch {
	case status == 401 || status == 403:
		return "bad_signature"
	case status == 413:
		return "too_large"
	case status == 400:
		return "bad_request"
	case status == 404:
		return "not_found"
	case status == 405:
		return "bad_method"
	case status >= 500:
		return "error"
	}
	return "ok"
}

// routeOf maps a URL path to a channel route key.
func routeOf(path string) (string, bool) {
	for _, r := range routePrefixes {
		if name, ok := strings.CutPrefix(path, r.prefix); ok && name != "" && !strings.Contains(name, "/") {
			return r.kind + name, true
		}
	}
	return "", false
}

var routePrefixes = []struct{ prefix, kind string }{
	{"/wechat/oa/", "oa/"}, {"/wecom/kf/", "kf/"}, {"/wecom/app/", "app/"}, {"/im/", "im/"},
}

func (g *Gateway) serveChannel(ctx *fasthttp.RequestCtx, ch *channel) (string, error) {
	if g.draining.Load() {
		// During shutdown refuse new work; WeChat retries elsewhere.
		return "draining", errStatus(503, "shutting down", nil)
	}
	if len(ctx.Request.Body()) > g.cfg.MaxBodyBytes {
		return "", errStatus(413, "body too large", nil)
	}
	switch ch.cfg.Type {
	case conv.ChannelWeChatOA:
		return g.serveOA(ctx, ch)
	case conv.ChannelWeComApp:
		return g.serveWeComApp(ctx, ch)
	case conv.ChannelWeComKF:
		return g.serveKF(ctx, ch)
	case conv.ChannelJSON:
		return g.serveJSON(ctx, ch)
	}
	return "", errStatus(404, "unknown channel type", nil)
}

func (g *Gateway) readyz(ctx *fasthttp.RequestCtx) {
	c, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := g.eng.Ping(c); err != nil || g.draining.Load() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("not ready\n")
		return
	}
	ctx.SetBodyString("ready")
}

// checkTimestamp bounds replays: a callback must be signed near now.
func (g *Gateway) checkTimestamp(ts string) error {
	var sec int64
	if ts == "" || len(ts) > 12 {
		return errStatus(400, "missing or bad timestamp", errStale)
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return errStatus(400, "bad timestamp", errStale)
		}
		sec = sec*10 + int64(c-'0')
	}
	d := g.now().Sub(time.Unix(sec, 0))
	if d < 0 {
		d = -d
	}
	if d > g.cfg.TimestampWindow {
		return errStatus(403, "timestamp outside the allowed window", errStale)
	}
	return nil
}

// shard spreads customers over inbox shards; one customer always lands on
// the same shard.
func (g *Gateway) shard(c conv.CustomerID) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(c))
	return int(h.Sum32() % uint32(g.cfg.Shards))
}

// Drain stops accepting callbacks (readyz turns red) and waits until the
// work already accepted by this instance is answered or ctx ends.
func (g *Gateway) Drain(ctx context.Context) error {
	g.draining.Store(true)
	done := make(chan struct{})
	go func() { g.work.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Gateway) newOwner() string {
	return fmt.Sprintf("%s-%d", g.instance, g.seq.Add(1))
}

// ErrorHandler answers requests fasthttp rejects before the handler runs:
// an oversized body is 413 (so operators can tell it from garbage), other
// parse errors 400. Use it as fasthttp.Server.ErrorHandler.
func ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		ctx.Error("body too large", fasthttp.StatusRequestEntityTooLarge)
		return
	}
	ctx.Error("bad request", fasthttp.StatusBadRequest)
}

// SetClock replaces the gateway's clock (tests jump ahead in time).
func (g *Gateway) SetClock(now func() time.Time) { g.clock.Store(&now) }

func (g *Gateway) now() time.Time { return (*g.clock.Load())() }
