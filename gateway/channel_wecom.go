package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/valyala/fasthttp"

	"kefu/engine"
)

// verifyWeCom checks msg_signature over the encrypted part and decrypts it
// with the corp id as receive id (WeCom apps and WeChat KF, WECHAT.md §3.1).
func (g *Gateway) verifyWeCom(ch *channel, q query, encrypted string) ([]byte, error) {
	if !signatureOK(q.msgSignature, ch.cfg.Token, q.timestamp, q.nonce, encrypted) {
		return nil, errStatus(401, "msg_signature mismatch", errBadSignature)
	}
	plain, err := ch.key.decrypt(encrypted)
	if err != nil {
		return nil, errStatus(500, "cannot decrypt a correctly signed message (check encoding_aes_key and corp id)", err)
	}
	return plain, nil
}

// wecomEcho answers the GET URL verification: the echostr is encrypted and
// its plaintext goes back verbatim, no quotes, BOM or newline.
func (g *Gateway) wecomEcho(ctx *fasthttp.RequestCtx, ch *channel, q query) (string, error) {
	if q.echostr == "" {
		return "", errStatus(400, "missing echostr", nil)
	}
	plain, err := g.verifyWeCom(ch, q, q.echostr)
	if err != nil {
		return "", err
	}
	ctx.SetBody(plain)
	return "verified", nil
}

// wecomEnvelope reads the encrypted body of a WeCom/KF POST.
func (g *Gateway) wecomEnvelope(ctx *fasthttp.RequestCtx, ch *channel, q query) (*xmlFields, []byte, error) {
	if err := g.checkTimestamp(q.timestamp); err != nil {
		return nil, nil, err
	}
	env, err := parseWeChatXML(ctx.PostBody())
	if err != nil {
		return nil, nil, errStatus(400, "malformed XML envelope", err)
	}
	enc := env.Get("Encrypt")
	if enc == "" {
		return nil, nil, errStatus(400, "missing Encrypt", nil)
	}
	plain, err := g.verifyWeCom(ch, q, enc)
	if err != nil {
		return nil, nil, err
	}
	f, err := parseWeChatXML(plain)
	if err != nil {
		return nil, nil, errStatus(400, "malformed XML", err)
	}
	return f, plain, nil
}

// serveWeComApp handles a WeCom self-built app callback.
func (g *Gateway) serveWeComApp(ctx *fasthttp.RequestCtx, ch *channel) (string, error) {
	q := readQuery(ctx)
	if ctx.IsGet() {
		return g.wecomEcho(ctx, ch, q)
	}
	if !ctx.IsPost() {
		return "", errStatus(405, "method not allowed", nil)
	}
	f, plain, err := g.wecomEnvelope(ctx, ch, q)
	if err != nil {
		return "", err
	}
	msg, res, outcome, err := g.acceptXML(ch, f, plain)
	if err != nil {
		return "", err
	}
	if res.passive == nil {
		return outcome, nil // 200 with an empty body
	}
	writePassiveReply(ctx, ch, true, msg.ExternalUser, ch.cfg.AppID, *res.passive, g.now(), q.timestamp, q.nonce)
	return outcome + "_replied", nil
}

// kfSyncJob asks a puller to sync one KF account.
type kfSyncJob struct {
	Channel  string `json:"channel"`
	OpenKfID string `json:"open_kfid"`
	Token    string `json:"token"`
	At       int64  `json:"at"`
}

// kfQueue holds pending sync jobs, one per KF account (the job ID), so
// a burst of callbacks coalesces into one pull.
const kfQueue = "kf:sync"

// serveKF handles a WeChat Customer Service callback: it is only a signal;
// the messages are pulled with sync_msg by the KF puller (WECHAT.md §4).
func (g *Gateway) serveKF(ctx *fasthttp.RequestCtx, ch *channel) (string, error) {
	q := readQuery(ctx)
	if ctx.IsGet() {
		return g.wecomEcho(ctx, ch, q)
	}
	if !ctx.IsPost() {
		return "", errStatus(405, "method not allowed", nil)
	}
	f, _, err := g.wecomEnvelope(ctx, ch, q)
	if err != nil {
		return "", err
	}
	if ev := f.Get("Event"); ev != "kf_msg_or_event" {
		// Other KF events carry nothing to pull; acknowledge them.
		g.log.Debug("ignoring KF callback event", "event", ev, "channel", ch.cfg.Name)
		return "ignored", nil
	}
	openKfID, token := f.Get("OpenKfId"), f.Get("Token")
	if openKfID == "" {
		return "", errStatus(400, "missing OpenKfId", nil)
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Cheap callback dedupe by (OpenKfId, Token); the real dedupe is per
	// KF msgid when the messages are pulled.
	fresh, err := g.eng.SetNX(c, "kfcb:"+ch.cfg.AppID+":"+openKfID+":"+token, []byte("1"), g.cfg.DedupeTTL)
	if err != nil {
		return "", errStatus(503, "cannot accept callback now", err)
	}
	if !fresh {
		g.metrics.dedupeHits.WithLabelValues(ch.cfg.Name).Inc()
		return "duplicate", nil
	}
	data, _ := json.Marshal(kfSyncJob{Channel: ch.cfg.Name, OpenKfID: openKfID, Token: token, At: g.now().Unix()})
	if err := g.eng.Enqueue(c, kfQueue, engine.Job{ID: ch.cfg.Name + ":" + openKfID, Data: data, Due: g.now()}); err != nil {
		_ = g.eng.Del(c, "kfcb:"+ch.cfg.AppID+":"+openKfID+":"+token)
		return "", errStatus(503, "cannot accept callback now", err)
	}
	g.kfWake()
	return "accepted", nil
}
