package wxsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"
)

// OAApp configures one simulated Official Account.
type OAApp struct {
	AppID      string
	Secret     string
	OriginalID string // gh_…; informational
	// TestAccount makes msgmenu sends fail with 40200, as on real sandbox accounts.
	TestAccount bool
	// Templates lists valid template ids; nil accepts any non-empty id.
	Templates []string
	// DailyCustomLimit caps custom/send per day (default 500 000 → 45009).
	DailyCustomLimit int
}

// WeComApp configures one simulated WeCom self-built app.
type WeComApp struct {
	CorpID  string
	AgentID int64
	Secret  string
	// Members lists valid userids; nil accepts any userid.
	Members []string
}

// KFCorp configures WeChat Customer Service for a corp. It has its own
// secret (the 「微信客服」secret), distinct from every app's.
type KFCorp struct {
	CorpID    string
	Secret    string
	Accounts  []string // open_kfid values (wk…)
	Servicers []string // userids of reception staff, initially "正在接待"
}

// APIOptions configures a simulated API. Zero values mean the real platform's numbers.
type APIOptions struct {
	OA     []OAApp
	WeCom  []WeComApp
	KF     []KFCorp
	Robots []string // webhook keys

	// Now is the base clock (default time.Now); API.Advance shifts it.
	Now func() time.Time
	// TokenTTL is the access_token lifetime (default 7200 s).
	TokenTTL time.Duration
	// Latency delays every response (per-path overrides via SetLatency).
	Latency time.Duration
	// KFPageSize caps sync_msg pages below the request's limit so that
	// has_more loops happen with few messages (default 1000 = limit only).
	KFPageSize int
	// KFEmptyPageEvery makes every n-th sync_msg call that has messages to
	// return answer an empty msg_list with has_more=1 instead, as the doc
	// warns can happen (default 5; negative disables).
	KFEmptyPageEvery int
	// KFNoTokenPerMin limits sync_msg calls without a callback token per
	// corp per minute (default 10 → 45009); the doc only says "strict".
	KFNoTokenPerMin int
	// StrictAgentID rejects a JSON string agentid in WeCom message/send
	// (silenceper sends a string; whether WeCom accepts it is unverified).
	StrictAgentID bool
	// MaxCalls bounds the call log so long runs and load tests do not grow
	// without limit; the oldest half is dropped when full (default 100 000).
	MaxCalls int
}

// Call is one recorded API request and its outcome.
type Call struct {
	At       time.Time
	Method   string
	Path     string
	Query    url.Values
	Body     []byte
	ErrCode  int
	ErrMsg   string
	Response []byte
	// Notes explains silent outcomes (dropped by rate limit, deduplicated…).
	Notes []string
}

// Sent is one message the simulated platform delivered to a recipient: what
// the customer (or member, or robot group) actually saw.
type Sent struct {
	At      time.Time
	Channel string // "oa", "oa_template", "kf", "kf_event", "wecom", "robot"
	Account string // appid, open_kfid, agentid, webhook key
	To      string // openid, external_userid, userid, webhook key
	MsgType string
	Content string // text/markdown content, or a summary for other types
	Head    string // msgmenu head
	Menu    []MenuOption
	Tail    string // msgmenu tail
	MediaID string
	MsgID   string // platform msgid returned to the caller
	Raw     []byte // the request body
}

// MenuOption is one msgmenu choice as the customer sees it.
type MenuOption struct {
	ID      string
	Content string
}

type tokenKind int

const (
	tokOA tokenKind = iota + 1
	tokOAStable
	tokWeCom
	tokKF
)

type accessToken struct {
	value   string
	kind    tokenKind
	owner   string // appid or corpid
	agentID int64  // WeCom app
	issued  time.Time
	expires time.Time
	// invalidAt is set when rotation or revocation cut the lifetime short;
	// after it the token answers 40001 rather than 42001.
	invalidAt time.Time
}

type fault struct {
	errcode int
	n       int
}

// API simulates the WeChat (api.weixin.qq.com) and WeCom
// (qyapi.weixin.qq.com) HTTP APIs the gateway calls, enforcing the
// documented rules (tokens, windows, quotas, KF session states). Create it
// with NewAPI; all methods are safe for concurrent use.
type API struct {
	opts APIOptions

	mu      sync.Mutex
	offset  time.Duration
	tokens  map[string]*accessToken
	oa      map[string]*oaState
	wecom   map[string]*wecomState // corpid/secret
	kfCorps map[string]*kfCorpState
	kfAccts map[string]*kfAccount // open_kfid
	kfCodes map[string]*kfCode
	robots  map[string]*robotState
	calls   []Call
	faults  map[string][]*fault
	latency map[string]time.Duration
	after   map[string]func() // AfterCall hooks, each run once
	inbox   map[string][]Sent
	seq     int64
	kfNote  func(openKfID, token string)

	srv *httptest.Server
}

// NewAPI returns a simulator configured by opts.
func NewAPI(opts APIOptions) *API {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 7200 * time.Second
	}
	if opts.KFPageSize <= 0 || opts.KFPageSize > 1000 {
		opts.KFPageSize = 1000
	}
	if opts.KFEmptyPageEvery == 0 {
		opts.KFEmptyPageEvery = 5
	}
	if opts.KFNoTokenPerMin <= 0 {
		opts.KFNoTokenPerMin = 10
	}
	if opts.MaxCalls <= 0 {
		opts.MaxCalls = 100000
	}
	a := &API{
		opts:    opts,
		tokens:  map[string]*accessToken{},
		oa:      map[string]*oaState{},
		wecom:   map[string]*wecomState{},
		kfCorps: map[string]*kfCorpState{},
		kfAccts: map[string]*kfAccount{},
		kfCodes: map[string]*kfCode{},
		robots:  map[string]*robotState{},
		faults:  map[string][]*fault{},
		latency: map[string]time.Duration{},
		after:   map[string]func(){},
		inbox:   map[string][]Sent{},
	}
	for _, app := range opts.OA {
		a.AddOAApp(app)
	}
	for _, app := range opts.WeCom {
		a.AddWeComApp(app)
	}
	for _, c := range opts.KF {
		a.AddKFCorp(c)
	}
	for _, k := range opts.Robots {
		a.AddRobot(k)
	}
	return a
}

// AddOAApp registers (or replaces) an Official Account.
func (a *API) AddOAApp(app OAApp) {
	if app.DailyCustomLimit <= 0 {
		app.DailyCustomLimit = 500000
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.oa[app.AppID] = &oaState{app: app, users: map[string]*oaUser{}, templateDedupe: map[string]templateSent{}}
}

// AddWeComApp registers a WeCom app; its token is bound to its secret.
func (a *API) AddWeComApp(app WeComApp) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.wecom[app.CorpID+"/"+app.Secret] = &wecomState{app: app, perMember: map[string][]time.Time{}, dedupe: map[string]time.Time{}}
}

// AddRobot registers a group-robot webhook key.
func (a *API) AddRobot(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.robots[key] = &robotState{}
}

// Now returns the simulated time.
func (a *API) Now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nowLocked()
}

func (a *API) nowLocked() time.Time {
	base := time.Now()
	if a.opts.Now != nil {
		base = a.opts.Now()
	}
	return base.Add(a.offset)
}

// Advance moves the simulated clock forward by d (e.g. 48 h to close windows).
func (a *API) Advance(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.offset += d
}

// Start serves the simulator on a loopback listener and returns its base
// URL; point both the api.weixin.qq.com and qyapi.weixin.qq.com bases at
// it. Close stops it.
func (a *API) Start() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv == nil {
		a.srv = httptest.NewServer(a.Handler())
	}
	return a.srv.URL
}

// StartOn serves the simulator on addr (e.g. "127.0.0.1:18080") for
// long-running use such as `kefu chat`, and returns its base URL.
func (a *API) StartOn(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		_ = ln.Close()
		return a.srv.URL, nil
	}
	a.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}}
	a.srv.Start()
	return a.srv.URL, nil
}

// Close stops a server started by Start/StartOn.
func (a *API) Close() {
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	a.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// FailNext makes the next n calls to path answer errcode (with no effect),
// e.g. FailNext("/cgi-bin/message/custom/send", -1, 2) for "system busy".
func (a *API) FailNext(path string, errcode, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults[path] = append(a.faults[path], &fault{errcode: errcode, n: n})
}

// ClearFaults drops the faults FailNext queued for path and not yet used.
func (a *API) ClearFaults(path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.faults, path)
}

// SetLatency delays responses on path by d (overrides APIOptions.Latency).
func (a *API) SetLatency(path string, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.latency[path] = d
}

// AfterCall runs fn once, after the next call to path has been answered
// and before the answer is sent: tests use it to make something happen
// while a client is waiting for the API (a customer writing again while
// the gateway pulls KF messages).
func (a *API) AfterCall(path string, fn func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.after[path] = fn
}

// Calls returns the recorded calls to path ("" for all), oldest first.
func (a *API) Calls(path string) []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Call
	for _, c := range a.calls {
		if path == "" || c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// Inbox returns what recipient (openid, external_userid, userid or robot
// key) has received so far, oldest first.
func (a *API) Inbox(recipient string) []Sent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.inbox[recipient])
}

// TokenCalls counts token requests (all token endpoints) for an appid or corpid.
func (a *API) TokenCalls(appOrCorpID string) int {
	n := 0
	for _, c := range a.Calls("") {
		switch c.Path {
		case "/cgi-bin/token", "/cgi-bin/gettoken":
			if c.Query.Get("appid") == appOrCorpID || c.Query.Get("corpid") == appOrCorpID {
				n++
			}
		case "/cgi-bin/stable_token":
			var b struct{ AppID string }
			_ = json.Unmarshal(c.Body, &b)
			if b.AppID == appOrCorpID {
				n++
			}
		}
	}
	return n
}

// RevokeToken invalidates a token immediately, as Tencent may do; later
// calls with it get 40001.
func (a *API) RevokeToken(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.tokens[token]; t != nil {
		t.invalidAt = a.nowLocked()
	}
}

// RevokeTokens invalidates every token issued to appOrCorpID.
func (a *API) RevokeTokens(appOrCorpID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.nowLocked()
	for _, t := range a.tokens {
		if t.owner == appOrCorpID {
			t.invalidAt = now
		}
	}
}

// SetKFNotifier registers fn to be called (in a new goroutine) with a fresh
// sync token whenever the platform itself appends to an account's message
// stream as a side effect of an API call (msg_send_fail and similar), so it
// can be wired to KFClient.SendEvent. Injections (KFCustomerSends…) return
// their token to the caller instead.
func (a *API) SetKFNotifier(fn func(openKfID, token string)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kfNote = fn
}

// ---- HTTP plumbing ----

// apiError is a WeChat error answer.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func errc(code int, msg string) *apiError { return &apiError{code: code, msg: msg} }

// reqCtx carries one request through a handler, under a.mu.
type reqCtx struct {
	r     *http.Request
	query url.Values
	body  []byte
	now   time.Time
	tok   *accessToken
	notes []string
}

func (c *reqCtx) note(s string) { c.notes = append(c.notes, s) }

type route struct {
	method string
	auth   tokenKind // 0 = no access_token
	// alsoAuth lists further accepted token kinds.
	alsoAuth []tokenKind
	h        func(a *API, c *reqCtx) (map[string]any, *apiError)
}

// routes maps paths to handlers; each endpoint file registers its own.
var routes = map[string]route{}

func register(path string, r route) { routes[path] = r }

// Handler returns the simulator's http.Handler (for mounting without Start).
func (a *API) Handler() http.Handler { return http.HandlerFunc(a.serveHTTP) }

func (a *API) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	path := r.URL.Path
	a.mu.Lock()
	d, ok := a.latency[path]
	if !ok {
		d = a.opts.Latency
	}
	a.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-r.Context().Done():
			t.Stop()
		case <-t.C:
		}
	}
	res, status := a.dispatch(r, path, body)
	a.mu.Lock()
	after := a.after[path]
	delete(a.after, path)
	a.mu.Unlock()
	if after != nil {
		after()
	}
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(res)
}

func (a *API) dispatch(r *http.Request, path string, body []byte) ([]byte, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := &reqCtx{r: r, query: r.URL.Query(), body: body, now: a.nowLocked()}
	status := http.StatusOK
	var out map[string]any
	var e *apiError
	rt, ok := routes[path]
	var injected *apiError
	if ok {
		injected = a.takeFault(path)
	}
	switch {
	case !ok:
		status, e = http.StatusNotFound, errc(40066, "invalid url")
	case injected != nil:
		e = injected
	case rt.method == http.MethodPost && r.Method != http.MethodPost:
		e = errc(43002, "require POST method")
	case rt.method == http.MethodGet && r.Method != http.MethodGet:
		e = errc(43001, "require GET method")
	default:
		if rt.auth != 0 {
			e = a.checkToken(c, append([]tokenKind{rt.auth}, rt.alsoAuth...))
		}
		if e == nil && rt.method == http.MethodPost && path != "/cgi-bin/webhook/send" && !json.Valid(body) {
			e = errc(47001, "data format error")
		}
		if e == nil {
			out, e = rt.h(a, c)
		}
	}
	if out == nil {
		out = map[string]any{}
	}
	if e != nil {
		out = map[string]any{"errcode": e.code, "errmsg": e.msg}
	} else {
		out["errcode"] = 0
		out["errmsg"] = "ok"
	}
	res, _ := json.Marshal(out)
	call := Call{At: c.now, Method: r.Method, Path: path, Query: c.query, Body: body, Response: res, Notes: c.notes}
	if e != nil {
		call.ErrCode, call.ErrMsg = e.code, e.msg
	} else {
		call.ErrMsg = "ok"
	}
	if len(a.calls) >= a.opts.MaxCalls {
		a.calls = append(a.calls[:0:0], a.calls[len(a.calls)/2:]...)
	}
	a.calls = append(a.calls, call)
	return res, status
}

func (a *API) takeFault(path string) *apiError {
	fs := a.faults[path]
	for len(fs) > 0 && fs[0].n <= 0 {
		fs = fs[1:]
	}
	a.faults[path] = fs
	if len(fs) == 0 {
		return nil
	}
	fs[0].n--
	return errc(fs[0].errcode, "injected fault")
}

// checkToken validates access_token for the route's token kinds.
func (a *API) checkToken(c *reqCtx, kinds []tokenKind) *apiError {
	v := c.query.Get("access_token")
	if v == "" {
		return errc(41001, "access_token missing")
	}
	t := a.tokens[v]
	if t == nil {
		return errc(40014, "invalid access_token")
	}
	if !slices.Contains(kinds, t.kind) {
		if t.kind == tokWeCom && slices.Contains(kinds, tokKF) || t.kind == tokKF && slices.Contains(kinds, tokWeCom) {
			return errc(48002, "api forbidden: this access_token's secret has no access to this api")
		}
		return errc(40014, "invalid access_token")
	}
	if !t.invalidAt.IsZero() && !c.now.Before(t.invalidAt) {
		return errc(40001, "invalid credential, access_token is invalid or not latest")
	}
	if !c.now.Before(t.expires) {
		return errc(42001, "access_token expired")
	}
	c.tok = t
	return nil
}

// newTokenLocked issues a token. Values look like WeChat's: long, opaque.
func (a *API) newTokenLocked(kind tokenKind, owner string, agentID int64, now time.Time) *accessToken {
	b := make([]byte, 96)
	_, _ = rand.Read(b)
	t := &accessToken{value: base64.RawURLEncoding.EncodeToString(b), kind: kind, owner: owner, agentID: agentID, issued: now, expires: now.Add(a.opts.TokenTTL)}
	a.tokens[t.value] = t
	return t
}

func (t *accessToken) remaining(now time.Time) int64 {
	end := t.expires
	if !t.invalidAt.IsZero() && t.invalidAt.Before(end) {
		end = t.invalidAt
	}
	s := int64(end.Sub(now) / time.Second)
	if s < 0 {
		s = 0
	}
	return s
}

func (t *accessToken) validAt(now time.Time) bool {
	return now.Before(t.expires) && (t.invalidAt.IsZero() || now.Before(t.invalidAt))
}

// decodeJSON unmarshals the body; shape errors are 47001 like WeChat's.
func decodeJSON(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return errc(47001, "data format error: "+err.Error())
	}
	return nil
}

func (a *API) nextID(prefix string) string {
	a.seq++
	return prefix + base36(a.seq+1_000_000)
}

func base36(n int64) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append(b, digits[n%36])
		n /= 36
	}
	slices.Reverse(b)
	return string(b)
}

func (a *API) deliver(s Sent) {
	a.inbox[s.To] = append(a.inbox[s.To], s)
}

// sortedKeys is for deterministic iteration in error messages.
func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var errNoAPI = errors.New("wxsim: client has no API set")
