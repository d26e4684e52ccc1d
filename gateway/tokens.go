package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"golang.org/x/sync/singleflight"

	"kefu/conv"
	"kefu/engine"
)

// APIError is an errcode answer from a WeChat/WeCom API.
type APIError struct {
	Code int
	Msg  string
	Path string
}

// Error formats the errcode, errmsg and the API path.
func (e *APIError) Error() string {
	return fmt.Sprintf("%s: errcode=%d errmsg=%s", e.Path, e.Code, e.Msg)
}

// Errcodes the gateway acts on (WECHAT.md §7.5).
const (
	codeInvalidCredential = 40001
	codeInvalidToken      = 40014
	codeTokenExpired      = 42001
	codeFreqLimit         = 45009
	codeOutOfWindow       = 45015
	codeOutOfCount        = 45047
	codeNoPermission      = 48001
	codeAccountType       = 40200
)

func isTokenError(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code == codeInvalidCredential || ae.Code == codeInvalidToken || ae.Code == codeTokenExpired
	}
	return false
}

// tokenApp identifies one credential: OA appid, or a WeCom corp with one
// of its secrets (an app's or the 微信客服 one — different tokens).
type tokenApp struct {
	kind   string // "oa", "wecom", "kf"
	id     string // appid or corpid
	secret string
	agent  string // WeCom agentid; "kf" for the KF secret
}

// cacheKey uses silenceper's key names so another silenceper-based tool
// sharing the same Redis sees the same token; the agent suffix keeps the
// KF token apart from an app's token of the same corp (WECHAT.md §5.4).
func (a tokenApp) cacheKey() string {
	if a.kind == "oa" {
		return "gowechat_officialaccount__stable_access_token_" + a.id
	}
	return "gowechat_work__access_token_" + a.id + "_" + a.agent
}

// Tokens caches access tokens in the engine, refreshing one at a time
// across all instances (a lease) and once per process (singleflight).
type Tokens struct {
	cfg     Config
	cache   *EngineCache
	eng     engine.Engine
	http    *http.Client
	sf      singleflight.Group
	log     *slog.Logger
	metrics *Metrics
}

func newTokens(cfg Config, eng engine.Engine, log *slog.Logger, m *Metrics) *Tokens {
	return &Tokens{
		cfg:     cfg,
		cache:   NewEngineCache(eng),
		eng:     eng,
		http:    &http.Client{Timeout: cfg.HTTPTimeout},
		log:     log.With("component", "tokens"),
		metrics: m,
	}
}

// tokenLease bounds how long one instance may hold the refresh lock.
const tokenLease = 10 * time.Second

// Get returns a valid access token for app.
func (t *Tokens) Get(ctx context.Context, app tokenApp) (string, error) {
	key := app.cacheKey()
	if v, ok := cache.GetContext(ctx, t.cache, key).(string); ok && v != "" {
		return v, nil
	}
	v, err, _ := t.sf.Do(key, func() (any, error) { return t.refresh(ctx, app) })
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (t *Tokens) refresh(ctx context.Context, app tokenApp) (string, error) {
	key := app.cacheKey()
	lock := "lock:" + key
	owner := fmt.Sprint(time.Now().UnixNano())
	deadline := time.Now().Add(tokenLease + 2*time.Second)
	for {
		if v, ok := t.cache.GetContext(ctx, key).(string); ok && v != "" {
			return v, nil
		}
		got, err := t.eng.SetNX(ctx, lock, []byte(owner), tokenLease)
		if err != nil {
			return "", err
		}
		if got {
			break
		}
		// Another instance is refreshing: wait for its token rather than
		// fetching a second one (for /cgi-bin/token that would invalidate
		// theirs).
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w: token refresh lock held too long for %s", conv.ErrUnavailable, app.id)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer func() { _, _ = t.eng.CompareAndDelete(context.Background(), lock, []byte(owner)) }()
	tok, expires, err := t.fetch(ctx, app)
	if err != nil {
		t.metrics.tokenRefresh.WithLabelValues(app.kind, "error").Inc()
		return "", err
	}
	t.metrics.tokenRefresh.WithLabelValues(app.kind, "ok").Inc()
	// Stable tokens may come back with a short remaining life; keep a
	// margin but never cache for 0 s (which Redis would reject).
	ttl := time.Duration(expires)*time.Second - 5*time.Minute
	if ttl < time.Minute {
		ttl = time.Duration(expires) * time.Second / 2
	}
	if ttl < time.Second {
		ttl = time.Second
	}
	if err := cache.SetContext(ctx, t.cache, key, tok, ttl); err != nil {
		t.log.Warn("token cache write failed", "app", app.id, "err", err)
	}
	return tok, nil
}

// Invalidate drops bad from the cache if it is still the cached token, so
// the next Get refreshes (40001/40014/42001). Compare-and-delete keeps a
// token another instance just refreshed.
func (t *Tokens) Invalidate(ctx context.Context, app tokenApp, bad string) {
	_, _ = t.eng.CompareAndDelete(ctx, app.cacheKey(), []byte(bad))
}

func (t *Tokens) fetch(ctx context.Context, app tokenApp) (string, int, error) {
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		ErrCode     int    `json:"errcode"`
		ErrMsg      string `json:"errmsg"`
	}
	var req *http.Request
	var err error
	if app.kind == "oa" {
		// stable_token in normal mode returns the same token while valid
		// and never invalidates other callers' tokens (WECHAT.md §2.5).
		body, _ := json.Marshal(map[string]any{"grant_type": "client_credential", "appid": app.id, "secret": app.secret, "force_refresh": false})
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, t.cfg.APIBase+"/cgi-bin/stable_token", bytes.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	} else {
		u := t.cfg.WeComAPIBase + "/cgi-bin/gettoken?corpid=" + url.QueryEscape(app.id) + "&corpsecret=" + url.QueryEscape(app.secret)
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	}
	if err != nil {
		return "", 0, err
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("%w: token endpoint: %v", conv.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", 0, fmt.Errorf("token endpoint answered %d with non-JSON body", resp.StatusCode)
	}
	if out.ErrCode != 0 || out.AccessToken == "" {
		return "", 0, &APIError{Code: out.ErrCode, Msg: out.ErrMsg, Path: "token"}
	}
	return out.AccessToken, out.ExpiresIn, nil
}

// EngineCache implements silenceper's cache.Cache (and ContextCache) on a
// kefu engine, so silenceper's credential code and ours share tokens on
// go-redis v9 or the embedded engine. It returns string values (silenceper
// type-asserts string) and clamps TTLs to at least one second.
type EngineCache struct{ e engine.Engine }

var _ cache.ContextCache = (*EngineCache)(nil)

// NewEngineCache wraps e.
func NewEngineCache(e engine.Engine) *EngineCache { return &EngineCache{e: e} }

// Get returns the string at key, or nil when absent or on error.
func (c *EngineCache) Get(key string) any { return c.GetContext(context.Background(), key) }

// Set stores val (a string or []byte) for timeout.
func (c *EngineCache) Set(key string, val any, timeout time.Duration) error {
	return c.SetContext(context.Background(), key, val, timeout)
}

// IsExist reports whether key is present.
func (c *EngineCache) IsExist(key string) bool { return c.IsExistContext(context.Background(), key) }

// Delete removes key.
func (c *EngineCache) Delete(key string) error { return c.DeleteContext(context.Background(), key) }

// GetContext returns the string at key, or nil when absent or on error.
func (c *EngineCache) GetContext(ctx context.Context, key string) any {
	b, err := c.e.Get(ctx, key)
	if err != nil {
		return nil
	}
	return string(b)
}

// SetContext stores val for timeout (clamped to ≥ 1 s; 0 keeps no expiry).
func (c *EngineCache) SetContext(ctx context.Context, key string, val any, timeout time.Duration) error {
	var b []byte
	switch v := val.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b = j
	}
	if timeout < 0 || (timeout > 0 && timeout < time.Second) {
		timeout = time.Second
	}
	return c.e.Set(ctx, key, b, timeout)
}

// IsExistContext reports whether key is present.
func (c *EngineCache) IsExistContext(ctx context.Context, key string) bool {
	_, err := c.e.Get(ctx, key)
	return err == nil
}

// DeleteContext removes key.
func (c *EngineCache) DeleteContext(ctx context.Context, key string) error {
	return c.e.Del(ctx, key)
}

// wxClient calls WeChat/WeCom JSON APIs with a token, refreshing it once on
// an invalid-token errcode.
type wxClient struct {
	tokens *Tokens
	http   *http.Client
}

// call POSTs (or GETs when body is nil) base+path with the app's token and
// decodes the answer into out (which may be nil); errcode != 0 → *APIError.
func (c *wxClient) call(ctx context.Context, app tokenApp, base, path string, body any, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.Get(ctx, app)
		if err != nil {
			return err
		}
		err = c.do(ctx, base, path, tok, body, out)
		if isTokenError(err) && attempt == 0 {
			c.tokens.Invalidate(ctx, app, tok)
			continue
		}
		return err
	}
}

func (c *wxClient) do(ctx context.Context, base, path, tok string, body any, out any) error {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	u := base + path
	if tok != "" {
		u += sep + "access_token=" + url.QueryEscape(tok)
	}
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", conv.ErrUnavailable, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", conv.ErrUnavailable, path, err)
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%w: %s answered HTTP %d", conv.ErrUnavailable, path, resp.StatusCode)
	}
	var ec struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(b, &ec); err != nil {
		return fmt.Errorf("%s answered HTTP %d with non-JSON body", path, resp.StatusCode)
	}
	if ec.ErrCode != 0 {
		return &APIError{Code: ec.ErrCode, Msg: ec.ErrMsg, Path: path}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
