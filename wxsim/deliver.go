package wxsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Mode is an Official Account's message encryption mode (WECHAT.md §1.2).
type Mode int

// The three OA encryption modes.
const (
	ModePlain  Mode = iota // 明文模式: plaintext both ways
	ModeCompat             // 兼容模式: plaintext fields plus Encrypt; reply either way
	ModeSafe               // 安全模式: ciphertext only; replies must be encrypted
)

// String returns "plain", "compat" or "safe".
func (m Mode) String() string {
	switch m {
	case ModeCompat:
		return "compat"
	case ModeSafe:
		return "safe"
	}
	return "plain"
}

// ParseMode parses "plain"/"compat"/"safe" (also "raw", "compatible", "aes",
// the words configs and the WeChat console use).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "plain", "raw", "plaintext":
		return ModePlain, nil
	case "compat", "compatible":
		return ModeCompat, nil
	case "safe", "aes", "secure":
		return ModeSafe, nil
	}
	return ModePlain, fmt.Errorf("wxsim: unknown mode %q", s)
}

// Defaults that model the real platform.
const (
	// DefaultTimeout is how long WeChat/WeCom waits for a callback answer.
	DefaultTimeout = 5 * time.Second
	// DefaultRetries is the number of extra deliveries after the first. The
	// docs say "a maximum of three retries"; field reports see 2. The
	// simulator uses the pessimistic 3 so dedupe is tested against 4 copies.
	DefaultRetries = 3
	// NoRetries, assigned to a client's Retries, disables redelivery
	// (the zero value means DefaultRetries).
	NoRetries = -1
)

// ErrNotAcked reports a callback that no delivery got a 200 for within the
// timeout: WeChat gives up and the user sees an error.
var ErrNotAcked = errors.New("wxsim: callback not acknowledged")

// Tamper alters a built callback for negative tests. Signatures are always
// computed over what is actually sent unless the Tamper breaks them on purpose.
type Tamper func(*tamper)

type tamper struct {
	badSignature    bool
	badMsgSignature bool
	receiveID       *string
	aesKey          string
	age             time.Duration
	omit            []string
}

// WrongSignature sends a wrong OA `signature` (3-part) query parameter.
func WrongSignature() Tamper { return func(t *tamper) { t.badSignature = true } }

// WrongMsgSignature sends a wrong `msg_signature` (encrypted modes, WeCom, KF).
func WrongMsgSignature() Tamper { return func(t *tamper) { t.badMsgSignature = true } }

// WrongReceiveID encrypts with id (instead of the AppID/CorpID) as the
// trailing receive id, with valid signatures: a receiver must still reject it.
func WrongReceiveID(id string) Tamper { return func(t *tamper) { t.receiveID = &id } }

// WrongAESKey encrypts with a different EncodingAESKey (signed correctly),
// the "Invalid padding" symptom of a mixed-up configuration.
func WrongAESKey(encodingAESKey string) Tamper { return func(t *tamper) { t.aesKey = encodingAESKey } }

// StaleTimestamp dates the request age in the past (signatures valid), for
// testing the receiver's replay window.
func StaleTimestamp(age time.Duration) Tamper { return func(t *tamper) { t.age = age } }

// OmitQuery drops the named query parameters.
func OmitQuery(names ...string) Tamper {
	return func(t *tamper) { t.omit = append(t.omit, names...) }
}

func applyTampers(ts []Tamper) tamper {
	var t tamper
	for _, f := range ts {
		f(&t)
	}
	return t
}

// breakSig returns a well-formed but wrong signature.
func breakSig(s string) string {
	if s == "" {
		return strings.Repeat("0", 40)
	}
	b := []byte(s)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

// CallbackRequest is a fully built callback, ready to send any number of
// times. Retries resend it unchanged (same timestamp, nonce and body).
type CallbackRequest struct {
	Method    string // POST, or GET for URL verification
	URL       string // endpoint URL including the query string
	Body      []byte // nil for GET
	Timestamp string
	Nonce     string
	Plain     []byte // the plaintext XML inside (for logs and assertions)
	// Echo is the plaintext echostr a GET verification expects back.
	Echo string

	notify func() // tells the simulated API about the user's interaction
	decode func([]byte) (*PassiveReply, error)
}

// NewHTTPRequest returns a fresh *http.Request for one delivery of r.
func (r *CallbackRequest) NewHTTPRequest(ctx context.Context) (*http.Request, error) {
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return nil, err
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", "text/xml")
	}
	// WeChat's callback fetcher identifies itself like this.
	req.Header.Set("User-Agent", "Mozilla/4.0")
	req.Header.Set("Accept", "*/*")
	return req, nil
}

// Attempt is one delivery of a callback.
type Attempt struct {
	Start    time.Time
	Latency  time.Duration
	Status   int    // HTTP status; 0 when no response arrived
	Body     []byte // response body (up to 1 MiB)
	TimedOut bool   // no complete answer within the timeout
	Err      error  // transport error or timeout
}

// Delivery is the outcome of sending one callback, including redeliveries.
type Delivery struct {
	Request  *CallbackRequest
	Attempts []Attempt
	// Acked is true when some attempt got HTTP 200 within the timeout.
	Acked bool
	// Body is the body of the acknowledging attempt.
	Body []byte
	// Reply is the decoded passive reply; nil for "success"/empty bodies.
	Reply *PassiveReply
	// ReplyErr is why the acknowledging body was rejected (wraps ErrBadReply).
	ReplyErr error
}

// UserSawError reports whether the end user would see WeChat's "service
// unavailable" notice: nothing acknowledged, or an unacceptable body.
func (d *Delivery) UserSawError() bool { return !d.Acked || d.ReplyErr != nil }

// deliverer implements WeChat's delivery loop.
type deliverer struct {
	client    *http.Client
	retries   int
	retryWait time.Duration
	timeout   time.Duration
}

func newDeliverer(c *http.Client, retries int, retryWait, timeout time.Duration) deliverer {
	if c == nil {
		c = http.DefaultClient
	}
	if retries == 0 {
		retries = DefaultRetries
	}
	if retries < 0 {
		retries = 0
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// By default deliveries start a timeout apart (~5 s, as observed).
	if retryWait == 0 {
		retryWait = timeout
	}
	if retryWait < 0 {
		retryWait = 0
	}
	return deliverer{client: c, retries: retries, retryWait: retryWait, timeout: timeout}
}

// deliver sends r until an attempt is answered with 200 in time or the
// retries run out. A 200 with an unacceptable body is not retried: WeChat
// shows the user an error instead.
func (d deliverer) deliver(ctx context.Context, r *CallbackRequest) (*Delivery, error) {
	if r.notify != nil {
		r.notify()
	}
	del := &Delivery{Request: r}
	for i := 0; i <= d.retries; i++ {
		start := time.Now()
		a := d.attempt(ctx, r)
		del.Attempts = append(del.Attempts, a)
		if a.Status == http.StatusOK && !a.TimedOut && a.Err == nil {
			del.Acked = true
			del.Body = a.Body
			if r.decode != nil {
				del.Reply, del.ReplyErr = r.decode(a.Body)
			}
			if del.ReplyErr != nil {
				return del, del.ReplyErr
			}
			return del, nil
		}
		if ctx.Err() != nil {
			return del, ctx.Err()
		}
		if i == d.retries {
			break
		}
		if wait := d.retryWait - time.Since(start); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return del, ctx.Err()
			case <-t.C:
			}
		}
	}
	last := del.Attempts[len(del.Attempts)-1]
	return del, fmt.Errorf("%w after %d deliveries (last: status %d, err %v)", ErrNotAcked, len(del.Attempts), last.Status, last.Err)
}

func (d deliverer) attempt(parent context.Context, r *CallbackRequest) Attempt {
	ctx, cancel := context.WithTimeout(parent, d.timeout)
	defer cancel()
	a := Attempt{Start: time.Now()}
	req, err := r.NewHTTPRequest(ctx)
	if err != nil {
		a.Err = err
		return a
	}
	resp, err := d.client.Do(req)
	if err == nil {
		a.Status = resp.StatusCode
		a.Body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
	}
	a.Latency = time.Since(a.Start)
	if err != nil {
		a.Err = err
		if ctx.Err() == context.DeadlineExceeded && parent.Err() == nil {
			a.TimedOut = true
		}
	}
	return a
}

// msgIDSeq makes auto-generated MsgIds unique within the process and shaped
// like WeChat's (17+ digit 64-bit integers).
var msgIDSeq atomic.Int64

func init() { msgIDSeq.Store(time.Now().UnixMicro() * 10) }

// NextMsgID returns a fresh MsgId for a simulated user message.
func NextMsgID() int64 { return msgIDSeq.Add(1) }

// withQuery appends q to base, keeping any query base already has.
func withQuery(base string, q url.Values) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("wxsim: bad callback URL %q: %w", base, err)
	}
	have := u.Query()
	for k, vs := range q {
		for _, v := range vs {
			have.Add(k, v)
		}
	}
	u.RawQuery = have.Encode()
	return u.String(), nil
}

func unixString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
