package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"kefu/conv"
	"kefu/engine"
)

//go:embed static
var staticFS embed.FS

// Desk is the human desk the console drives; *handoff.Service implements
// it. Every method that takes a Principal enforces authorization itself.
type Desk interface {
	Queue(ctx context.Context, p conv.Principal) ([]conv.Conversation, error)
	Mine(ctx context.Context, p conv.Principal) ([]conv.Conversation, error)
	Ongoing(ctx context.Context, p conv.Principal) ([]conv.Conversation, error)
	Chat(ctx context.Context, p conv.Principal, id conv.ConvID) (conv.Conversation, []conv.Turn, error)
	History(ctx context.Context, customer conv.CustomerID) ([]conv.Conversation, error)
	Agents(ctx context.Context, p conv.Principal) ([]conv.AgentInfo, error)
	Tickets(ctx context.Context, p conv.Principal) ([]conv.Ticket, error)
	Quota(ctx context.Context, p conv.Principal, id conv.ConvID) (conv.QuotaInfo, error)
	SetStatus(ctx context.Context, p conv.Principal, st conv.AgentStatus) error
	Accept(ctx context.Context, p conv.Principal, id conv.ConvID) error
	Reply(ctx context.Context, p conv.Principal, id conv.ConvID, clientID, text string) error
	Note(ctx context.Context, p conv.Principal, id conv.ConvID, text string) error
	Transfer(ctx context.Context, p conv.Principal, id conv.ConvID, to, reason string) error
	Assign(ctx context.Context, p conv.Principal, id conv.ConvID, agent string) error
	TakeOver(ctx context.Context, p conv.Principal, id conv.ConvID) error
	Close(ctx context.Context, p conv.Principal, id conv.ConvID, disposition string, resolved bool) error
	Updates(ctx context.Context) (<-chan conv.DeskUpdate, error)
}

// Suggestion is one KB entry offered to an agent.
type Suggestion struct {
	EntryID  string  `json:"id"`
	Question string  `json:"question"`
	Answer   string  `json:"answer"`
	Category string  `json:"category,omitempty"`
	Score    float64 `json:"score"`
}

// KBSearcher finds KB entries for agents (the app adapts bot.Bot.Search
// with includeAgentOnly=true).
type KBSearcher interface {
	Search(ctx context.Context, text string, store conv.StoreID, k int) []Suggestion
}

// KBSearchFunc adapts a function to KBSearcher.
type KBSearchFunc func(ctx context.Context, text string, store conv.StoreID, k int) []Suggestion

// Search calls f.
func (f KBSearchFunc) Search(ctx context.Context, text string, store conv.StoreID, k int) []Suggestion {
	return f(ctx, text, store, k)
}

// SurveyScore is one past survey answer of a customer.
type SurveyScore struct {
	Score   int       `json:"score"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// CaseSummary is one open detractor case of a customer.
type CaseSummary struct {
	ID    string    `json:"id"`
	State string    `json:"state"`
	Store string    `json:"store,omitempty"`
	Due   time.Time `json:"due,omitzero"`
}

// Profile is what the surveys side knows about a customer.
type Profile struct {
	Surveys   []SurveyScore `json:"surveys"`
	OpenCases []CaseSummary `json:"open_cases"`
}

// ProfileSource gives a customer's past survey scores and open cases; the
// surveys package implements it. Nil shows "—".
type ProfileSource interface {
	Profile(ctx context.Context, customer conv.CustomerID) (Profile, error)
}

// Deps are what the console is built from. Engine and Desk are required.
type Deps struct {
	Engine   engine.Engine
	Desk     Desk
	KB       KBSearcher    // optional
	Profiles ProfileSource // optional
	Stores   *conv.StoreTree
	Logger   *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Console is the console's http.Handler.
type Console struct {
	cfg   Config
	d     Deps
	log   *slog.Logger
	now   func() time.Time
	mux   *http.ServeMux
	hub   *hub
	dummy []byte // bcrypt hash compared for unknown users (constant work)
}

// New builds the console.
func New(cfg Config, d Deps) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Engine == nil || d.Desk == nil {
		return nil, fmt.Errorf("console: Engine and Desk are required")
	}
	c := &Console{cfg: cfg, d: d, log: d.Logger, now: d.Now, mux: http.NewServeMux()}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "console")
	if c.now == nil {
		c.now = time.Now
	}
	// Unknown users cost one bcrypt comparison at the configured cost too,
	// so response time does not reveal which names exist.
	cost := PasswordCost
	for _, u := range cfg.Users {
		if uc, err := bcrypt.Cost([]byte(u.PasswordHash)); err == nil {
			cost = uc
			break
		}
	}
	c.dummy, _ = bcrypt.GenerateFromPassword([]byte("dummy-password-for-timing"), cost)
	c.hub = newHub(d.Desk, c.log)
	c.routes()
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// Close stops the live-update subscription.
func (c *Console) Close() { c.hub.close() }

// shutdownTimeout bounds draining the console on shutdown.
const shutdownTimeout = 5 * time.Second

// Run serves the console on cfg.Listen until ctx ends (a Service for the
// app's errgroup; nothing to do when console.listen is empty).
func (c *Console) Run(ctx context.Context) error {
	if c.cfg.Listen == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		return fmt.Errorf("console.listen: %w", err)
	}
	return c.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (c *Console) Serve(ctx context.Context, ln net.Listener) error {
	// Requests inherit a context that ends with ctx, so open event
	// streams end and Shutdown does not wait for them.
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second,
		MaxHeaderBytes: 16 << 10, BaseContext: func(net.Listener) context.Context { return base }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	c.log.Info("console listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	cancel()
	sctx, stop := context.WithTimeout(context.Background(), shutdownTimeout)
	defer stop()
	err := srv.Shutdown(sctx)
	c.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Mount serves h under prefix (e.g. "/surveys/") behind the console login:
// the request reaches h only with a valid session whose role is in roles
// (any role when none are given), with the conv.Principal in its context
// (conv.PrincipalFrom). The path is not stripped. State-changing requests
// must send the X-CSRF-Token header (its value is in the readable
// kefu_csrf cookie) or be a same-origin application/json request.
func (c *Console) Mount(prefix string, h http.Handler, roles ...conv.Role) {
	c.mux.Handle(prefix, c.auth(roles, false, func(w http.ResponseWriter, r *http.Request, p conv.Principal) {
		h.ServeHTTP(w, r.WithContext(conv.WithPrincipal(r.Context(), p)))
	}))
}

// MountPublic serves h under prefix without login (signed links such as a
// one-tap case claim). h must authenticate requests itself.
func (c *Console) MountPublic(prefix string, h http.Handler) { c.mux.Handle(prefix, h) }

func (c *Console) routes() {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(sub)
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, sub, "index.html")
	})
	c.mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		files.ServeHTTP(w, r)
	})))
	c.mux.HandleFunc("POST /api/login", c.login)
	c.mux.HandleFunc("POST /api/logout", c.logout)
	all := []conv.Role(nil)
	sup := []conv.Role{conv.RoleSupervisor, conv.RoleAdmin}
	c.handle("GET /api/me", all, c.apiMe)
	c.handle("GET /api/queue", all, c.apiQueue)
	c.handle("GET /api/chats/{id}", all, c.apiChat)
	c.handle("POST /api/chats/{id}/accept", all, c.apiAccept)
	c.handle("POST /api/chats/{id}/reply", all, c.apiReply)
	c.handle("POST /api/chats/{id}/note", all, c.apiNote)
	c.handle("POST /api/chats/{id}/transfer", all, c.apiTransfer)
	c.handle("POST /api/chats/{id}/close", all, c.apiClose)
	c.handle("POST /api/chats/{id}/assign", sup, c.apiAssign)
	c.handle("POST /api/chats/{id}/takeover", sup, c.apiTakeOver)
	c.handle("GET /api/kb", all, c.apiKB)
	c.handle("GET /api/agents", all, c.apiAgents)
	c.handle("POST /api/status", all, c.apiStatus)
	c.handle("GET /api/tickets", all, c.apiTickets)
	c.mux.Handle("GET /api/events", c.auth(all, true, c.events))
	c.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, fmt.Errorf("%w: no such endpoint %s %s", conv.ErrNotFound, r.Method, r.URL.Path))
	})
}

// --- sessions ---

const (
	sessionCookie = "kefu_session"
	csrfCookie    = "kefu_csrf"
	csrfHeader    = "X-CSRF-Token"
	maxBody       = 64 << 10
)

type session struct {
	User    string    `json:"user"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"exp"`
}

// sessionKey stores only a hash of the token, so a leaked engine dump
// holds no usable cookies.
func sessionKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return "console:sess:" + hex.EncodeToString(h[:])
}

func (c *Console) session(r *http.Request) (session, conv.Principal, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || len(ck.Value) != 64 {
		return session{}, conv.Principal{}, false
	}
	b, err := c.d.Engine.Get(r.Context(), sessionKey(ck.Value))
	if err != nil {
		return session{}, conv.Principal{}, false
	}
	var s session
	if json.Unmarshal(b, &s) != nil || !c.now().Before(s.Expires) {
		return session{}, conv.Principal{}, false
	}
	u, ok := c.cfg.user(s.User)
	if !ok { // removed from config since login
		return session{}, conv.Principal{}, false
	}
	return s, principalOf(u), true
}

func principalOf(u User) conv.Principal {
	name := u.Display
	if name == "" {
		name = u.Name
	}
	return conv.Principal{User: u.Name, Name: name, Role: u.Role, Stores: u.Stores}
}

// auth wraps h: 401 without a valid session, 403 for a role not in roles,
// 403 for a state-changing request without CSRF proof.
func (c *Console) auth(roles []conv.Role, strictCSRF bool, h func(http.ResponseWriter, *http.Request, conv.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, p, ok := c.session(r)
		if !ok {
			writeErr(w, fmt.Errorf("%w: log in first", conv.ErrUnauthorized))
			return
		}
		if len(roles) > 0 && !slices.Contains(roles, p.Role) {
			writeErr(w, fmt.Errorf("%w: role %s may not use %s", conv.ErrForbidden, p.Role, r.URL.Path))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := c.checkCSRF(r, s, strictCSRF); err != nil {
				writeErr(w, err)
				return
			}
		}
		h(w, r, p)
	})
}

func (c *Console) checkCSRF(r *http.Request, s session, strict bool) error {
	tok := r.Header.Get(csrfHeader)
	if tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) == 1 {
		return nil
	}
	if tok == "" && !strict && isJSON(r) && sameOrigin(r) {
		// Mounted pages without the header: a cross-site page cannot send
		// application/json without a CORS preflight we never approve.
		return nil
	}
	return fmt.Errorf("%w: missing or wrong %s header", conv.ErrForbidden, csrfHeader)
}

func isJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

// sameOrigin reports whether Origin (or Referer) names this host, when sent.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (c *Console) handle(pattern string, roles []conv.Role, f func(r *http.Request, p conv.Principal) (any, error)) {
	c.mux.Handle(pattern, c.auth(roles, true, func(w http.ResponseWriter, r *http.Request, p conv.Principal) {
		v, err := f(r, p)
		if err != nil {
			c.logErr(r, err)
			writeErr(w, err)
			return
		}
		if v == nil {
			v = map[string]bool{"ok": true}
		}
		writeJSON(w, http.StatusOK, v)
	}))
}

type loginReq struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	var req loginReq
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if !sameOrigin(r) {
		writeErr(w, fmt.Errorf("%w: cross-origin login", conv.ErrForbidden))
		return
	}
	if req.User == "" || req.Password == "" || len(req.User) > 64 || len(req.Password) > 72 {
		writeErr(w, fmt.Errorf("%w: user and password are required (password at most 72 bytes)", conv.ErrBadInput))
		return
	}
	ctx := r.Context()
	failKey := "console:fail:" + req.User
	if b, err := c.d.Engine.Get(ctx, failKey); err == nil && atoi(string(b)) >= c.cfg.LoginLockout {
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many failed logins; try again later"})
		return
	}
	u, ok := c.cfg.user(req.User)
	hash := []byte(u.PasswordHash)
	if !ok {
		hash = c.dummy
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(req.Password)) != nil || !ok {
		_, _ = c.d.Engine.IncrBy(ctx, failKey, 1, LoginWindow)
		c.log.Info("login failed", "user", req.User)
		writeErr(w, fmt.Errorf("%w: wrong user or password", conv.ErrUnauthorized))
		return
	}
	_ = c.d.Engine.Del(ctx, failKey)
	token, csrf := randomHex(32), randomHex(16)
	s := session{User: u.Name, CSRF: csrf, Expires: c.now().Add(c.cfg.SessionTTL)}
	b, _ := json.Marshal(s)
	if err := c.d.Engine.Set(ctx, sessionKey(token), b, c.cfg.SessionTTL); err != nil {
		writeErr(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true, Secure: c.cfg.SecureCookie,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.SessionTTL.Seconds())})
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: csrf, Path: "/", Secure: c.cfg.SecureCookie,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.SessionTTL.Seconds())})
	c.log.Info("login", "user", u.Name, "role", u.Role)
	writeJSON(w, http.StatusOK, c.me(principalOf(u), csrf))
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	s, _, ok := c.session(r)
	if ok {
		if err := c.checkCSRF(r, s, true); err != nil {
			writeErr(w, err)
			return
		}
		ck, _ := r.Cookie(sessionCookie)
		_ = c.d.Engine.Del(r.Context(), sessionKey(ck.Value))
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: "", Path: "/", MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// --- helpers ---

func decode(r *http.Request, v any) error {
	if !isJSON(r) {
		return fmt.Errorf("%w: Content-Type must be application/json", conv.ErrBadInput)
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: bad JSON body: %v", conv.ErrBadInput, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: bad JSON body: trailing data", conv.ErrBadInput)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// statusOf maps domain errors to HTTP statuses in one place.
func statusOf(err error) int {
	switch {
	case errors.Is(err, conv.ErrBadInput):
		return http.StatusBadRequest
	case errors.Is(err, conv.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, conv.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, conv.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, conv.ErrConflict), errors.Is(err, conv.ErrQuotaExhausted), errors.Is(err, conv.ErrWindowClosed):
		return http.StatusConflict
	case errors.Is(err, conv.ErrUnavailable), errors.Is(err, engine.ErrUnavailable), errors.Is(err, engine.ErrTxConflict):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeErr(w http.ResponseWriter, err error) {
	st := statusOf(err)
	msg := err.Error()
	if st == http.StatusInternalServerError {
		msg = "internal error"
	}
	writeJSON(w, st, map[string]string{"error": msg})
}

func (c *Console) logErr(r *http.Request, err error) {
	if statusOf(err) >= 500 {
		c.log.Error("console request failed", "path", r.URL.Path, "err", err)
		return
	}
	c.log.Debug("console request refused", "path", r.URL.Path, "err", err)
}

func atoi(s string) int {
	n := 0
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return n
		}
		n = n*10 + int(ch-'0')
	}
	return n
}

// --- live updates ---

// hub fans one Desk.Updates subscription out to every SSE client of this
// instance (one engine subscription per instance, not per browser).
type hub struct {
	desk    Desk
	log     *slog.Logger
	mu      sync.Mutex
	clients map[chan conv.DeskUpdate]struct{}
	cancel  context.CancelFunc
}

func newHub(d Desk, log *slog.Logger) *hub {
	return &hub{desk: d, log: log, clients: map[chan conv.DeskUpdate]struct{}{}}
}

func (h *hub) join() (chan conv.DeskUpdate, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		src, err := h.desk.Updates(ctx)
		if err != nil {
			cancel()
			return nil, err
		}
		h.cancel = cancel
		go h.pump(src)
	}
	ch := make(chan conv.DeskUpdate, 64)
	h.clients[ch] = struct{}{}
	return ch, nil
}

func (h *hub) leave(ch chan conv.DeskUpdate) {
	h.mu.Lock()
	delete(h.clients, ch)
	h.mu.Unlock()
}

func (h *hub) pump(src <-chan conv.DeskUpdate) {
	for u := range src {
		h.mu.Lock()
		for ch := range h.clients {
			select {
			case ch <- u:
			default: // a slow browser misses a nudge; its next one reloads everything
			}
		}
		h.mu.Unlock()
	}
	// The subscription ended (engine closed): let the next join resubscribe.
	h.mu.Lock()
	h.cancel = nil
	h.mu.Unlock()
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		h.cancel()
	}
}

// keepAlive keeps proxies from closing idle SSE streams and re-checks the
// session so an expired login stops receiving updates.
const keepAlive = 15 * time.Second

func (c *Console) events(w http.ResponseWriter, r *http.Request, p conv.Principal) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeErr(w, errors.New("streaming unsupported"))
		return
	}
	ch, err := c.hub.join()
	if err != nil {
		writeErr(w, err)
		return
	}
	defer c.hub.leave(ch)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "event: hello\ndata: {}\n\n")
	fl.Flush()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, _, ok := c.session(r); !ok {
				fmt.Fprintf(w, "event: expired\ndata: {}\n\n")
				fl.Flush()
				return
			}
			fmt.Fprintf(w, ": keep-alive\n\n")
			fl.Flush()
		case u := <-ch:
			if !c.mayNotice(p, u) {
				continue
			}
			b, _ := json.Marshal(u)
			fmt.Fprintf(w, "event: update\ndata: %s\n\n", b)
			fl.Flush()
		}
	}
}

// mayNotice filters live updates to what p may see.
func (c *Console) mayNotice(p conv.Principal, u conv.DeskUpdate) bool {
	if u.Agent != "" && u.Agent == p.User {
		return true
	}
	if p.Role == conv.RoleAdmin || (len(p.Stores) == 0 && p.Role != conv.RoleStoreManager) {
		return true
	}
	if u.Store == "" {
		return p.Role == conv.RoleSupervisor
	}
	return p.CanSee(c.d.Stores, u.Store)
}
