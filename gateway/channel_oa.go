package gateway

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"kefu/conv"
	"kefu/internal/bufpool"
)

// channel is a configured endpoint with its decoded key.
type channel struct {
	cfg   ChannelConfig
	route string
	key   *cipherKey // nil: plaintext only
}

func newChannel(cc ChannelConfig) (*channel, error) {
	ch := &channel{cfg: cc}
	switch cc.Type {
	case conv.ChannelWeChatOA:
		ch.route = "oa/" + cc.Name
	case conv.ChannelWeComKF:
		ch.route = "kf/" + cc.Name
	case conv.ChannelWeComApp:
		ch.route = "app/" + cc.Name
	case conv.ChannelJSON:
		ch.route = "im/" + cc.Name
	}
	if cc.EncodingAESKey != "" && cc.Type != conv.ChannelJSON {
		k, err := newCipherKey(cc.EncodingAESKey, cc.AppID)
		if err != nil {
			return nil, err
		}
		ch.key = k
	}
	return ch, nil
}

// query copies the callback's query parameters out of the fasthttp ctx
// (its memory is reused after the handler returns).
type query struct {
	signature, timestamp, nonce, echostr, encryptType, msgSignature, openID string
}

func readQuery(ctx *fasthttp.RequestCtx) query {
	a := ctx.QueryArgs()
	return query{
		signature:    string(a.Peek("signature")),
		timestamp:    string(a.Peek("timestamp")),
		nonce:        string(a.Peek("nonce")),
		echostr:      string(a.Peek("echostr")),
		encryptType:  string(a.Peek("encrypt_type")),
		msgSignature: string(a.Peek("msg_signature")),
		openID:       string(a.Peek("openid")),
	}
}

// serveOA handles an Official Account callback (WECHAT.md §1).
func (g *Gateway) serveOA(ctx *fasthttp.RequestCtx, ch *channel) (string, error) {
	q := readQuery(ctx)
	// The plain signature is present in every mode and always checked.
	if !signatureOK(q.signature, ch.cfg.Token, q.timestamp, q.nonce) {
		return "", errStatus(401, "signature mismatch", errBadSignature)
	}
	if ctx.IsGet() {
		if q.echostr == "" {
			return "", errStatus(400, "missing echostr", nil)
		}
		ctx.SetBodyString(q.echostr)
		return "verified", nil
	}
	if !ctx.IsPost() {
		return "", errStatus(405, "method not allowed", nil)
	}
	if err := g.checkTimestamp(q.timestamp); err != nil {
		return "", err
	}
	body := ctx.PostBody()
	aes := q.encryptType == "aes"
	var plain []byte
	if aes {
		if ch.key == nil {
			return "", errStatus(400, "encrypted callback but the channel has no encoding_aes_key", nil)
		}
		var env xmlFields // on the stack, as f below
		if err := parseWeChatXMLInto(body, &env); err != nil {
			return "", errStatus(400, "malformed XML envelope", err)
		}
		enc := env.Get("Encrypt")
		if enc == "" {
			return "", errStatus(400, "missing Encrypt", nil)
		}
		if !signatureOK(q.msgSignature, ch.cfg.Token, q.timestamp, q.nonce, enc) {
			return "", errStatus(401, "msg_signature mismatch", errBadSignature)
		}
		// Decoded into a pooled buffer: the fields parsed from the message
		// are copies, and Raw (unknown kinds) is copied too.
		bp := plainBufs.Get()
		defer plainBufs.Put(bp, (*bp)[:0])
		var err error
		if plain, err = ch.key.decryptInto((*bp)[:cap(*bp)], enc); err != nil {
			// Correctly signed but undecryptable: a key problem on our
			// side. Non-200 so WeChat retries once it is fixed.
			return "decrypt_failed", errStatus(500, "cannot decrypt a correctly signed message (check encoding_aes_key)", err)
		}
	} else {
		plain = body
	}
	var f xmlFields
	if err := parseWeChatXMLInto(plain, &f); err != nil {
		return "", errStatus(400, "malformed XML", err)
	}
	msg, res, outcome, err := g.acceptXML(ch, &f, plain)
	if err != nil {
		return "", err
	}
	if res.passive == nil {
		ctx.SetBodyString("success")
		return outcome, nil
	}
	writePassiveReply(ctx, ch, aes, msg.ExternalUser, msg.Account, *res.passive, g.now(), q.timestamp, q.nonce)
	return outcome + "_replied", nil
}

// acceptXML maps a parsed push to a message and accepts it, waiting for a
// passive reply; outcome names the result for metrics.
func (g *Gateway) acceptXML(ch *channel, f *xmlFields, plain []byte) (conv.Message, acceptResult, string, error) {
	msg, err := oaMessage(ch, f, plain, g.now())
	if err != nil {
		return msg, acceptResult{}, "", err
	}
	res, err := g.accept(context.Background(), msg, g.cfg.DedupeTTL, true)
	if err != nil {
		return msg, res, "", err
	}
	if res.dup {
		return msg, res, "duplicate", nil
	}
	return msg, res, "accepted", nil
}

// oaMessage maps a parsed OA push (or a WeCom app push, which has the same
// shape) to a conv.Message. Unknown kinds are kept with Raw.
func oaMessage(ch *channel, f *xmlFields, raw []byte, now time.Time) (conv.Message, error) {
	from := f.Get("FromUserName")
	msgType := f.Get("MsgType")
	created := f.Get("CreateTime")
	if from == "" || msgType == "" || created == "" {
		return conv.Message{}, errStatus(400, "missing FromUserName, MsgType or CreateTime", nil)
	}
	ct, err := strconv.ParseInt(created, 10, 64)
	if err != nil {
		return conv.Message{}, errStatus(400, "bad CreateTime", err)
	}
	m := conv.Message{
		Channel:      ch.cfg.Name,
		ChannelType:  ch.cfg.Type,
		Account:      f.Get("ToUserName"),
		ExternalUser: from,
		Customer:     conv.NewCustomerID(ch.cfg.Name, from),
		Store:        ch.cfg.Store,
		RawType:      msgType,
		PlatformID:   f.Get("MsgId"),
		AgentID:      f.Get("AgentID"),
		CreatedAt:    time.Unix(ct, 0),
		ReceivedAt:   now,
	}
	switch msgType {
	case "text":
		m.Kind, m.Text = conv.MsgText, f.Get("Content")
		m.MenuID = f.Get("bizmsgmenuid")
	case "image":
		m.Kind, m.URL, m.MediaID = conv.MsgImage, f.Get("PicUrl"), f.Get("MediaId")
	case "voice":
		m.Kind, m.MediaID = conv.MsgVoice, f.Get("MediaId")
		m.Text = f.Get("Recognition") // ASR text, when voice recognition is on
		m.Extra = map[string]string{"format": f.Get("Format")}
	case "video", "shortvideo":
		m.Kind, m.MediaID = conv.MsgVideo, f.Get("MediaId")
		m.Extra = map[string]string{"thumb_media_id": f.Get("ThumbMediaId")}
	case "location":
		m.Kind, m.Label = conv.MsgLocation, f.Get("Label")
		m.Latitude, _ = strconv.ParseFloat(f.Get("Location_X"), 64)
		m.Longitude, _ = strconv.ParseFloat(f.Get("Location_Y"), 64)
		m.Extra = map[string]string{"scale": f.Get("Scale")}
	case "link":
		m.Kind, m.Title, m.Description, m.URL = conv.MsgLink, f.Get("Title"), f.Get("Description"), f.Get("Url")
	case "file":
		m.Kind, m.Title, m.MediaID = conv.MsgFile, f.Get("Title"), f.Get("MediaId")
	case "event":
		m.Kind, m.Event, m.EventKey = conv.MsgEvent, f.Get("Event"), f.Get("EventKey")
		m.Extra = map[string]string{}
		for _, k := range []string{"Ticket", "MenuId", "Status", "MsgID", "KfAccount", "FromKfAccount", "ToKfAccount", "Precision", "ChangeType"} {
			if v := f.Get(k); v != "" {
				m.Extra[k] = v
			}
		}
		if m.Event == "LOCATION" {
			m.Latitude, _ = strconv.ParseFloat(f.Get("Latitude"), 64)
			m.Longitude, _ = strconv.ParseFloat(f.Get("Longitude"), 64)
		}
		// A parametric QR code binds the customer to a store.
		scene := ""
		switch {
		case m.Event == "subscribe" && strings.HasPrefix(m.EventKey, "qrscene_"):
			scene = strings.TrimPrefix(m.EventKey, "qrscene_")
		case m.Event == "SCAN":
			scene = m.EventKey
		}
		if scene != "" {
			m.Extra["scene"] = scene
			if st, ok := ch.cfg.Scenes[scene]; ok {
				m.Store = st
			}
		}
	default:
		m.Kind = conv.MsgUnknown
		m.Raw = append([]byte(nil), raw...)
	}
	if ch.cfg.Type == conv.ChannelWeComApp {
		m.ID = "app:" + ch.cfg.AppID + ":" + m.AgentID
	} else {
		m.ID = "oa:" + ch.cfg.AppID
	}
	// Dedupe keys per WECHAT.md §7.2: messages by sender + MsgId, events by
	// sender + CreateTime + Event + EventKey.
	if m.PlatformID != "" {
		m.ID += ":m:" + from + ":" + m.PlatformID
	} else {
		m.ID += ":e:" + from + ":" + created + ":" + m.Event + ":" + m.EventKey
	}
	return m, nil
}

// appendPassiveXML appends a passive reply (WECHAT.md §1.6) to sb.
func appendPassiveXML(sb []byte, toUser, fromAccount string, r conv.Reply, now time.Time) []byte {
	sb = append(sb, "<xml><ToUserName>"...)
	sb = appendCDATA(sb, toUser)
	sb = append(sb, "</ToUserName><FromUserName>"...)
	sb = appendCDATA(sb, fromAccount)
	sb = append(sb, "</FromUserName><CreateTime>"...)
	sb = strconv.AppendInt(sb, now.Unix(), 10)
	sb = append(sb, "</CreateTime><MsgType>"...)
	switch r.Kind {
	case conv.ReplyImage:
		sb = appendCDATA(sb, "image")
		sb = append(sb, "</MsgType><Image><MediaId>"...)
		sb = appendCDATA(sb, r.MediaID)
		sb = append(sb, "</MediaId></Image>"...)
	case conv.ReplyNews:
		sb = appendCDATA(sb, "news")
		sb = append(sb, "</MsgType><ArticleCount>"...)
		sb = strconv.AppendInt(sb, int64(len(r.Articles)), 10)
		sb = append(sb, "</ArticleCount><Articles>"...)
		for _, a := range r.Articles {
			sb = append(sb, "<item><Title>"...)
			sb = appendCDATA(sb, a.Title)
			sb = append(sb, "</Title><Description>"...)
			sb = appendCDATA(sb, a.Description)
			sb = append(sb, "</Description><PicUrl>"...)
			sb = appendCDATA(sb, a.PicURL)
			sb = append(sb, "</PicUrl><Url>"...)
			sb = appendCDATA(sb, a.URL)
			sb = append(sb, "</Url></item>"...)
		}
		sb = append(sb, "</Articles>"...)
	case conv.ReplyTransfer:
		sb = appendCDATA(sb, "transfer_customer_service")
		sb = append(sb, "</MsgType>"...)
		if r.KFAccount != "" {
			sb = append(sb, "<TransInfo><KfAccount>"...)
			sb = appendCDATA(sb, r.KFAccount)
			sb = append(sb, "</KfAccount></TransInfo>"...)
		}
	default:
		sb = appendCDATA(sb, "text")
		sb = append(sb, "</MsgType><Content>"...)
		sb = appendCDATA(sb, r.Text)
		sb = append(sb, "</Content>"...)
	}
	return append(sb, "</xml>"...)
}

// appendEncryptedEnvelope appends reply wrapped for safe mode to dst,
// echoing the request's timestamp and nonce as the protocol allows
// (WECHAT.md §1.4.7).
func appendEncryptedEnvelope(dst []byte, ch *channel, reply []byte, timestamp, nonce string) []byte {
	dst = append(dst, "<xml><Encrypt><![CDATA["...)
	start := len(dst)
	dst = ch.key.appendEncrypt(dst, reply) // base64: no "]]>" to escape
	enc := dst[start:]
	dst = append(dst, "]]></Encrypt><MsgSignature><![CDATA["...)
	dst = appendSignature(dst, ch.cfg.Token, timestamp, nonce, enc)
	dst = append(dst, "]]></MsgSignature><TimeStamp>"...)
	dst = append(dst, timestamp...)
	dst = append(dst, "</TimeStamp><Nonce>"...)
	dst = appendCDATA(dst, nonce)
	return append(dst, "</Nonce></xml>"...)
}

// writePassiveReply renders the passive reply into the response, wrapped
// for safe mode when aes is set, through a pooled buffer.
func writePassiveReply(ctx *fasthttp.RequestCtx, ch *channel, aes bool, toUser, fromAccount string, r conv.Reply, now time.Time, timestamp, nonce string) {
	bp := replyBufs.Get()
	b := appendPassiveXML(*bp, toUser, fromAccount, r, now)
	if aes {
		n := len(b)
		b = appendEncryptedEnvelope(b, ch, b[:n], timestamp, nonce)
		ctx.SetBody(b[n:])
	} else {
		ctx.SetBody(b)
	}
	ctx.SetContentType("application/xml")
	replyBufs.Put(bp, b)
}

// replyBufs holds the buffers passive replies are rendered in.
var replyBufs = bufpool.New(4096, 64<<10)

// plainBufs holds the buffers OA messages are decrypted into.
var plainBufs = bufpool.New(2048, 64<<10)
