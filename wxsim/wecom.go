package wxsim

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// WeComClient plays WeCom (企业微信) calling a self-built app's callback URL
// (WECHAT.md §3.1): only msg_signature is sent (no signature, no
// encrypt_type), the body is always encrypted with receive id = CorpID, the
// GET verification echostr is encrypted, and passive replies must be
// encrypted envelopes.
type WeComClient struct {
	URL            string
	Token          string
	CorpID         string
	AgentID        int64
	EncodingAESKey string
	HTTP           *http.Client
	Retries        int           // 0 = DefaultRetries, NoRetries = none
	RetryWait      time.Duration // 0 = Timeout, <0 = none
	Timeout        time.Duration // 0 = DefaultTimeout
	Now            func() time.Time
}

func (c *WeComClient) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// wecomEnvelope builds the encrypted POST shared by WeCom apps and WeChat KF.
func wecomEnvelope(base, token, key, corpID, outerAgentID string, plain []byte, now time.Time, t tamper) (*CallbackRequest, error) {
	if t.aesKey != "" {
		key = t.aesKey
	}
	cr, err := NewCrypter(token, key, corpID)
	if err != nil {
		return nil, err
	}
	ts, nonce := unixString(now.Add(-t.age)), newNonce()
	rid := corpID
	if t.receiveID != nil {
		rid = *t.receiveID
	}
	enc := cr.EncryptWith(randomBytes(16), rid, plain)
	msig := Signature(token, ts, nonce, enc)
	if t.badMsgSignature {
		msig = breakSig(msig)
	}
	q := url.Values{"msg_signature": {msig}, "timestamp": {ts}, "nonce": {nonce}}
	for _, k := range t.omit {
		q.Del(k)
	}
	u, err := withQuery(base, q)
	if err != nil {
		return nil, err
	}
	var w xmlWriter
	w.open()
	w.str("ToUserName", corpID)
	if outerAgentID != "" {
		w.str("AgentID", outerAgentID)
	}
	w.str("Encrypt", enc)
	w.close()
	return &CallbackRequest{Method: http.MethodPost, URL: u, Body: w.bytes(), Timestamp: ts, Nonce: nonce, Plain: plain}, nil
}

// wecomVerify performs WeCom's GET verification with an encrypted echostr.
func wecomVerify(ctx context.Context, hc *http.Client, timeout time.Duration, base, token, key, corpID string, now time.Time, t tamper) error {
	cr, err := NewCrypter(token, key, corpID)
	if err != nil {
		return err
	}
	ts, nonce := unixString(now.Add(-t.age)), newNonce()
	echo := strconv.FormatUint(uint64(NextMsgID())*7919, 10)
	rid := corpID
	if t.receiveID != nil {
		rid = *t.receiveID
	}
	enc := cr.EncryptWith(randomBytes(16), rid, []byte(echo))
	msig := Signature(token, ts, nonce, enc)
	if t.badMsgSignature || t.badSignature {
		msig = breakSig(msig)
	}
	// url.Values.Encode percent-encodes + / = in the base64 echostr, as WeCom does.
	q := url.Values{"msg_signature": {msig}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {enc}}
	for _, k := range t.omit {
		q.Del(k)
	}
	u, err := withQuery(base, q)
	if err != nil {
		return err
	}
	return verifyGET(ctx, hc, timeout, &CallbackRequest{Method: http.MethodGet, URL: u, Timestamp: ts, Nonce: nonce, Echo: echo})
}

// BuildRequest builds the POST WeCom would send for m without sending it.
// ToUserName (corpid), AgentID, CreateTime and MsgID are filled in when zero.
func (c *WeComClient) BuildRequest(m *Message, tampers ...Tamper) (*CallbackRequest, error) {
	t := applyTampers(tampers)
	msg := *m
	if msg.ToUserName == "" {
		msg.ToUserName = c.CorpID
	}
	if msg.AgentID == 0 {
		msg.AgentID = c.AgentID
	}
	now := c.now()
	if msg.CreateTime == 0 {
		msg.CreateTime = now.Add(-t.age).Unix()
	}
	if msg.MsgType != "event" && msg.MsgID == 0 {
		msg.MsgID = NextMsgID()
	}
	r, err := wecomEnvelope(c.URL, c.Token, c.EncodingAESKey, c.CorpID, strconv.FormatInt(msg.AgentID, 10), msg.XML(), now, t)
	if err != nil {
		return nil, err
	}
	d, err := c.replyDecoder(msg.FromUserName)
	if err != nil {
		return nil, err
	}
	r.decode = d.decode
	return r, nil
}

func (c *WeComClient) replyDecoder(userID string) (replyDecoder, error) {
	cr, err := NewCrypter(c.Token, c.EncodingAESKey, c.CorpID)
	if err != nil {
		return replyDecoder{}, err
	}
	return replyDecoder{mode: ModeSafe, crypter: cr, toUser: userID, fromUser: c.CorpID, types: weComReplyTypes}, nil
}

// DecodeReply decodes a callback response body for a push from userID;
// WeCom accepts only an empty body, "success" or an encrypted envelope.
func (c *WeComClient) DecodeReply(userID string, body []byte) (*PassiveReply, error) {
	d, err := c.replyDecoder(userID)
	if err != nil {
		return nil, err
	}
	return d.decode(body)
}

// Deliver sends a built request with WeCom's retry behaviour.
func (c *WeComClient) Deliver(ctx context.Context, r *CallbackRequest) (*Delivery, error) {
	return newDeliverer(c.HTTP, c.Retries, c.RetryWait, c.Timeout).deliver(ctx, r)
}

// Send builds and delivers m.
func (c *WeComClient) Send(ctx context.Context, m *Message, tampers ...Tamper) (*Delivery, error) {
	r, err := c.BuildRequest(m, tampers...)
	if err != nil {
		return nil, err
	}
	return c.Deliver(ctx, r)
}

// SendText pushes a member's text message; msgID 0 picks a fresh one.
func (c *WeComClient) SendText(ctx context.Context, userID, content string, msgID int64) (*Delivery, error) {
	return c.Send(ctx, &Message{FromUserName: userID, MsgType: "text", Content: content, MsgID: msgID})
}

// SendEvent pushes an app event (WeCom event names are lowercase: click,
// view, enter_agent, subscribe, …).
func (c *WeComClient) SendEvent(ctx context.Context, userID, event, eventKey string) (*Delivery, error) {
	return c.Send(ctx, &Message{FromUserName: userID, MsgType: "event", Event: event, EventKey: eventKey})
}

// Verify performs WeCom's GET verification: echostr is encrypted and the
// gateway must answer with the decrypted plaintext, exactly.
func (c *WeComClient) Verify(ctx context.Context, tampers ...Tamper) error {
	return wecomVerify(ctx, c.HTTP, c.Timeout, c.URL, c.Token, c.EncodingAESKey, c.CorpID, c.now(), applyTampers(tampers))
}

// KFClient plays WeChat Customer Service (微信客服) calling the gateway. KF
// callbacks carry no content: only Event=kf_msg_or_event with a sync Token
// (valid 10 min) and OpenKfId; the gateway must then call kf/sync_msg.
// Encryption is WeCom's, with receive id = CorpID. KF expects an empty 200.
type KFClient struct {
	URL            string
	Token          string // callback token (not the sync_msg token)
	CorpID         string
	EncodingAESKey string
	HTTP           *http.Client
	Retries        int
	RetryWait      time.Duration
	Timeout        time.Duration
	// API, when set, lets CustomerSends inject the message into the
	// simulated KF account before signalling the gateway.
	API *API
	Now func() time.Time
}

func (c *KFClient) now() time.Time {
	switch {
	case c.Now != nil:
		return c.Now()
	case c.API != nil:
		return c.API.Now()
	}
	return time.Now()
}

// BuildRequest builds the kf_msg_or_event callback for syncToken/openKfID.
func (c *KFClient) BuildRequest(syncToken, openKfID string, tampers ...Tamper) (*CallbackRequest, error) {
	t := applyTampers(tampers)
	now := c.now()
	var w xmlWriter
	w.open()
	w.str("ToUserName", c.CorpID)
	w.num("CreateTime", now.Add(-t.age).Unix())
	w.str("MsgType", "event")
	w.str("Event", "kf_msg_or_event")
	w.str("Token", syncToken)
	w.str("OpenKfId", openKfID)
	w.close()
	r, err := wecomEnvelope(c.URL, c.Token, c.EncodingAESKey, c.CorpID, "", w.bytes(), now, t)
	if err != nil {
		return nil, err
	}
	r.decode = replyDecoder{noPassive: true}.decode
	return r, nil
}

// Deliver sends a built request with WeCom's retry behaviour.
func (c *KFClient) Deliver(ctx context.Context, r *CallbackRequest) (*Delivery, error) {
	return newDeliverer(c.HTTP, c.Retries, c.RetryWait, c.Timeout).deliver(ctx, r)
}

// SendEvent delivers the kf_msg_or_event signal.
func (c *KFClient) SendEvent(ctx context.Context, syncToken, openKfID string, tampers ...Tamper) (*Delivery, error) {
	r, err := c.BuildRequest(syncToken, openKfID, tampers...)
	if err != nil {
		return nil, err
	}
	return c.Deliver(ctx, r)
}

// CustomerSends injects a customer text into the simulated KF account
// (API.KFCustomerSends) and signals the gateway, as the platform would. It
// needs API.
func (c *KFClient) CustomerSends(ctx context.Context, openKfID, externalUserID, text string) (*Delivery, error) {
	if c.API == nil {
		return nil, errNoAPI
	}
	tok, _, err := c.API.KFCustomerSends(openKfID, externalUserID, text)
	if err != nil {
		return nil, err
	}
	return c.SendEvent(ctx, tok, openKfID)
}

// Verify performs the GET verification (encrypted echostr, as WeCom).
func (c *KFClient) Verify(ctx context.Context, tampers ...Tamper) error {
	return wecomVerify(ctx, c.HTTP, c.Timeout, c.URL, c.Token, c.EncodingAESKey, c.CorpID, c.now(), applyTampers(tampers))
}
