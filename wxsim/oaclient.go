package wxsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// OAClient plays the WeChat server calling an Official Account's callback
// URL: it builds pushes exactly as WeChat does (query, body, crypto per
// Mode), delivers them with WeChat's timeout and retry behaviour, and decodes
// and verifies the passive reply. The zero values of HTTP, Retries,
// RetryWait and Timeout mean "like WeChat". Configure fields before use; the
// methods do not modify the client and are safe for concurrent use.
type OAClient struct {
	URL            string // the gateway's callback URL
	Token          string // callback token (令牌)
	AppID          string // receive id inside ciphertexts
	EncodingAESKey string // required for ModeCompat/ModeSafe
	OriginalID     string // the OA's gh_… id: ToUserName of pushes
	Mode           Mode
	HTTP           *http.Client  // nil: http.DefaultClient
	Retries        int           // extra deliveries; 0 = DefaultRetries, NoRetries = none
	RetryWait      time.Duration // min spacing of delivery starts; 0 = Timeout, <0 = none
	Timeout        time.Duration // per-delivery answer deadline; 0 = DefaultTimeout (5 s)
	// API, when set, is told about every user interaction this client
	// pushes (API.UserInteracted) so custom/send quotas follow the traffic.
	API *API
	// Now is the clock for CreateTime/timestamp; nil uses API's clock when
	// API is set, otherwise time.Now.
	Now func() time.Time
}

func (c *OAClient) now() time.Time {
	switch {
	case c.Now != nil:
		return c.Now()
	case c.API != nil:
		return c.API.Now()
	}
	return time.Now()
}

func (c *OAClient) deliverer() deliverer {
	return newDeliverer(c.HTTP, c.Retries, c.RetryWait, c.Timeout)
}

func (c *OAClient) crypter(t *tamper) (*Crypter, error) {
	key := c.EncodingAESKey
	if t != nil && t.aesKey != "" {
		key = t.aesKey
	}
	return NewCrypter(c.Token, key, c.AppID)
}

// BuildOARequest builds the POST WeChat would send for m without sending it,
// so load generators can pre-build requests. Empty ToUserName, CreateTime
// and (for non-events) MsgID are filled in. The request is not tied to the
// client: retries and replays resend it byte for byte.
func (c *OAClient) BuildOARequest(m *Message, tampers ...Tamper) (*CallbackRequest, error) {
	t := applyTampers(tampers)
	msg := *m
	if msg.ToUserName == "" {
		msg.ToUserName = c.OriginalID
	}
	now := c.now().Add(-t.age)
	if msg.CreateTime == 0 {
		msg.CreateTime = now.Unix()
	}
	if msg.MsgType != "event" && msg.MsgID == 0 {
		msg.MsgID = NextMsgID()
	}
	ts, nonce := unixString(now), newNonce()
	q := url.Values{}
	sig := Signature(c.Token, ts, nonce)
	if t.badSignature {
		sig = breakSig(sig)
	}
	q.Set("signature", sig)
	q.Set("timestamp", ts)
	q.Set("nonce", nonce)
	q.Set("openid", msg.FromUserName)

	plain := msg.XML()
	body := plain
	if c.Mode != ModePlain {
		cr, err := c.crypter(&t)
		if err != nil {
			return nil, err
		}
		rid := c.AppID
		if t.receiveID != nil {
			rid = *t.receiveID
		}
		enc := cr.EncryptWith(randomBytes(16), rid, plain)
		msig := Signature(c.Token, ts, nonce, enc)
		if t.badMsgSignature {
			msig = breakSig(msig)
		}
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", msig)
		var w xmlWriter
		w.open()
		if c.Mode == ModeCompat {
			// Compatible mode carries every plaintext field plus Encrypt.
			msg.writeFields(&w)
		} else {
			w.str("ToUserName", msg.ToUserName)
		}
		w.str("Encrypt", enc)
		w.close()
		body = w.bytes()
	}
	for _, k := range t.omit {
		q.Del(k)
	}
	u, err := withQuery(c.URL, q)
	if err != nil {
		return nil, err
	}
	dec, err := c.replyDecoder(msg.FromUserName)
	if err != nil {
		return nil, err
	}
	r := &CallbackRequest{Method: http.MethodPost, URL: u, Body: body, Timestamp: ts, Nonce: nonce, Plain: plain, decode: dec.decode}
	if c.API != nil {
		if kind := msg.Interaction(); kind != InteractNone {
			api, appID, openID := c.API, c.AppID, msg.FromUserName
			r.notify = func() { api.UserInteracted(appID, openID, kind, api.Now()) }
		}
	}
	return r, nil
}

func (c *OAClient) replyDecoder(openID string) (replyDecoder, error) {
	d := replyDecoder{mode: c.Mode, toUser: openID, fromUser: c.OriginalID, types: oaReplyTypes}
	if c.Mode != ModePlain {
		cr, err := c.crypter(nil)
		if err != nil {
			return d, err
		}
		d.crypter = cr
	}
	return d, nil
}

// DecodeReply decodes a callback response body as WeChat would for a push
// to openID: "success"/empty → (nil, nil); otherwise it checks the envelope
// signature, decrypts, checks the receive id and validates the reply.
func (c *OAClient) DecodeReply(openID string, body []byte) (*PassiveReply, error) {
	d, err := c.replyDecoder(openID)
	if err != nil {
		return nil, err
	}
	return d.decode(body)
}

// Deliver sends a built request with WeChat's retry behaviour. The error is
// ErrNotAcked, ErrBadReply (wrapped) or the context's error; the Delivery is
// returned in every case.
func (c *OAClient) Deliver(ctx context.Context, r *CallbackRequest) (*Delivery, error) {
	return c.deliverer().deliver(ctx, r)
}

// Send builds and delivers m (see BuildOARequest).
func (c *OAClient) Send(ctx context.Context, m *Message, tampers ...Tamper) (*Delivery, error) {
	r, err := c.BuildOARequest(m, tampers...)
	if err != nil {
		return nil, err
	}
	return c.Deliver(ctx, r)
}

// SendText pushes a text message; msgID 0 picks a fresh one.
func (c *OAClient) SendText(ctx context.Context, openID, content string, msgID int64) (*Delivery, error) {
	return c.Send(ctx, &Message{FromUserName: openID, MsgType: "text", Content: content, MsgID: msgID})
}

// SendMenuClick pushes what WeChat sends when the user taps an item of a
// msgmenu: a text message whose Content is the item text, with bizmsgmenuid.
// It opens no customer-service window.
func (c *OAClient) SendMenuClick(ctx context.Context, openID, menuID, content string) (*Delivery, error) {
	return c.Send(ctx, &Message{FromUserName: openID, MsgType: "text", Content: content, BizMsgMenuID: menuID})
}

// SendEvent pushes an event (subscribe, unsubscribe, SCAN, CLICK, VIEW,
// LOCATION, …). For subscribe via QR code pass eventKey "qrscene_<scene>".
func (c *OAClient) SendEvent(ctx context.Context, openID, event, eventKey string) (*Delivery, error) {
	return c.Send(ctx, &Message{FromUserName: openID, MsgType: "event", Event: event, EventKey: eventKey})
}

// SendImage pushes an image message.
func (c *OAClient) SendImage(ctx context.Context, openID, picURL, mediaID string, msgID int64) (*Delivery, error) {
	return c.Send(ctx, &Message{FromUserName: openID, MsgType: "image", PicURL: picURL, MediaID: mediaID, MsgID: msgID})
}

// SendVoice pushes a voice message; recognition is the ASR text WeChat adds
// when voice recognition is enabled ("" to omit the field).
func (c *OAClient) SendVoice(ctx context.Context, openID, mediaID, format, recognition string, msgID int64) (*Delivery, error) {
	if format == "" {
		format = "amr"
	}
	return c.Send(ctx, &Message{FromUserName: openID, MsgType: "voice", MediaID: mediaID, Format: format, Recognition: recognition, MsgID: msgID})
}

// SendLocation pushes a location message (x = latitude, y = longitude, as WeChat names them).
func (c *OAClient) SendLocation(ctx context.Context, openID string, x, y float64, scale int, label string, msgID int64) (*Delivery, error) {
	return c.Send(ctx, &Message{FromUserName: openID, MsgType: "location", LocationX: x, LocationY: y, Scale: scale, Label: label, MsgID: msgID})
}

// SendLink pushes a link message.
func (c *OAClient) SendLink(ctx context.Context, openID, title, description, linkURL string, msgID int64) (*Delivery, error) {
	return c.Send(ctx, &Message{FromUserName: openID, MsgType: "link", Title: title, Description: description, URL: linkURL, MsgID: msgID})
}

// ErrVerify reports a failed URL verification (wrong or decorated echo, non-200).
var ErrVerify = errors.New("wxsim: URL verification failed")

// Verify performs the console's GET URL check (plain echostr, 3-part
// signature). It returns nil only when the gateway answers 200 with echostr
// verbatim; negative tests pass a Tamper and expect ErrVerify.
func (c *OAClient) Verify(ctx context.Context, tampers ...Tamper) error {
	t := applyTampers(tampers)
	now := c.now().Add(-t.age)
	ts, nonce := unixString(now), newNonce()
	echo := strconv.FormatUint(uint64(NextMsgID())*7919, 10)
	sig := Signature(c.Token, ts, nonce)
	if t.badSignature {
		sig = breakSig(sig)
	}
	q := url.Values{"signature": {sig}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {echo}}
	for _, k := range t.omit {
		q.Del(k)
	}
	u, err := withQuery(c.URL, q)
	if err != nil {
		return err
	}
	return verifyGET(ctx, c.HTTP, c.Timeout, &CallbackRequest{Method: http.MethodGet, URL: u, Timestamp: ts, Nonce: nonce, Echo: echo})
}

// verifyGET sends a verification GET once (the console does not retry) and
// requires the exact echo: no quotes, BOM or newline.
func verifyGET(ctx context.Context, hc *http.Client, timeout time.Duration, r *CallbackRequest) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := r.NewHTTPRequest(ctx)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrVerify, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrVerify, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: status %d", ErrVerify, resp.StatusCode)
	}
	if string(body) != r.Echo {
		return fmt.Errorf("%w: body %q, want exactly %q", ErrVerify, clip(body), r.Echo)
	}
	return nil
}
