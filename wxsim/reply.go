package wxsim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadReply reports a callback answer WeChat would not accept: malformed
// XML, JSON, a wrong envelope signature, a wrong receive id, a reply to the
// wrong user, an unknown MsgType, a plaintext reply in safe mode…  In every
// such case the real user sees "该公众号暂时无法提供服务，请稍后再试".
var ErrBadReply = errors.New("wxsim: invalid passive reply")

// ReplyArticle is one item of a news passive reply.
type ReplyArticle struct {
	Title       string
	Description string
	PicURL      string
	URL         string
}

// PassiveReply is a decoded (and, in safe mode, verified and decrypted)
// passive reply returned in the HTTP response to a callback.
type PassiveReply struct {
	ToUser     string // must be the user the callback came from
	FromUser   string // must be the OA original id / corpid
	CreateTime int64
	MsgType    string // text, image, voice, video, music, news, transfer_customer_service
	Content    string // text
	MediaID    string // image, voice, video
	Title      string // video, music
	// Description is the video/music description.
	Description  string
	MusicURL     string
	HQMusicURL   string
	ThumbMediaID string
	Articles     []ReplyArticle // news
	KfAccount    string         // transfer_customer_service TransInfo target, if any
	Encrypted    bool           // the reply came in the encrypted envelope
	XML          []byte         // the plaintext reply XML
}

// replyXML covers both the encrypted envelope and every plaintext reply type.
type replyXML struct {
	XMLName      xml.Name
	ToUserName   string
	FromUserName string
	CreateTime   string
	MsgType      string
	Content      string
	Image        *struct{ MediaId string }
	Voice        *struct{ MediaId string }
	Video        *struct{ MediaId, Title, Description string }
	Music        *struct{ Title, Description, MusicUrl, HQMusicUrl, ThumbMediaId string }
	ArticleCount string
	Articles     *struct {
		Items []struct{ Title, Description, PicUrl, Url string } `xml:"item"`
	}
	TransInfo *struct{ KfAccount string }

	Encrypt      *string
	MsgSignature string
	TimeStamp    string
	Nonce        string
}

// replyDecoder decodes a callback response body the way WeChat does.
type replyDecoder struct {
	mode     Mode     // plain: plaintext only; safe: envelope only; compat: either
	crypter  *Crypter // nil in plain mode
	toUser   string   // expected ToUserName, "" = unchecked
	fromUser string   // expected FromUserName, "" = unchecked
	types    []string // allowed MsgTypes
	// noPassive marks endpoints (WeChat KF) that take no passive reply at all.
	noPassive bool
}

var (
	oaReplyTypes    = []string{"text", "image", "voice", "video", "music", "news", "transfer_customer_service"}
	weComReplyTypes = []string{"text", "image", "voice", "video", "news", "update_button", "update_template_card"}
)

// decode returns (nil, nil) for the two acknowledgements that mean "no
// passive reply": a 0-byte body and exactly "success". Both are compared
// exactly; WeChat documents those two bodies, nothing looser.
func (d replyDecoder) decode(body []byte) (*PassiveReply, error) {
	if len(body) == 0 || string(body) == "success" {
		return nil, nil
	}
	if d.noPassive {
		return nil, fmt.Errorf("%w: this callback takes an empty 200 body, got %q", ErrBadReply, clip(body))
	}
	var x replyXML
	if err := xml.Unmarshal(body, &x); err != nil {
		return nil, fmt.Errorf("%w: not XML: %v (body %q)", ErrBadReply, err, clip(body))
	}
	if x.XMLName.Local != "xml" {
		return nil, fmt.Errorf("%w: root element <%s>, want <xml>", ErrBadReply, x.XMLName.Local)
	}
	rep := &PassiveReply{}
	if x.Encrypt != nil {
		if d.mode == ModePlain || d.crypter == nil {
			return nil, fmt.Errorf("%w: encrypted reply to a plaintext-mode callback", ErrBadReply)
		}
		if x.MsgSignature == "" || x.TimeStamp == "" || x.Nonce == "" {
			return nil, fmt.Errorf("%w: envelope lacks MsgSignature/TimeStamp/Nonce", ErrBadReply)
		}
		if err := d.crypter.Verify(x.MsgSignature, x.TimeStamp, x.Nonce, *x.Encrypt); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadReply, err)
		}
		plain, err := d.crypter.Decrypt(*x.Encrypt)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadReply, err)
		}
		x = replyXML{}
		if err := xml.Unmarshal(plain, &x); err != nil {
			return nil, fmt.Errorf("%w: decrypted reply is not XML: %v", ErrBadReply, err)
		}
		if x.XMLName.Local != "xml" {
			return nil, fmt.Errorf("%w: decrypted root element <%s>, want <xml>", ErrBadReply, x.XMLName.Local)
		}
		if x.Encrypt != nil {
			return nil, fmt.Errorf("%w: doubly encrypted reply", ErrBadReply)
		}
		rep.Encrypted = true
		rep.XML = plain
	} else {
		if d.mode == ModeSafe {
			return nil, fmt.Errorf("%w: plaintext reply in safe mode", ErrBadReply)
		}
		rep.XML = bytes.Clone(body)
	}
	if err := d.fill(rep, &x); err != nil {
		return nil, err
	}
	return rep, nil
}

func (d replyDecoder) fill(rep *PassiveReply, x *replyXML) error {
	rep.ToUser, rep.FromUser, rep.MsgType = x.ToUserName, x.FromUserName, x.MsgType
	if d.toUser != "" && rep.ToUser != d.toUser {
		return fmt.Errorf("%w: ToUserName %q, want %q", ErrBadReply, rep.ToUser, d.toUser)
	}
	if d.fromUser != "" && rep.FromUser != d.fromUser {
		return fmt.Errorf("%w: FromUserName %q, want %q", ErrBadReply, rep.FromUser, d.fromUser)
	}
	var err error
	if rep.CreateTime, err = strconv.ParseInt(strings.TrimSpace(x.CreateTime), 10, 64); err != nil || rep.CreateTime <= 0 {
		return fmt.Errorf("%w: CreateTime %q is not a positive unix time", ErrBadReply, x.CreateTime)
	}
	allowed := d.types
	if allowed == nil {
		allowed = oaReplyTypes
	}
	ok := false
	for _, t := range allowed {
		ok = ok || t == rep.MsgType
	}
	if !ok {
		return fmt.Errorf("%w: MsgType %q not allowed here", ErrBadReply, rep.MsgType)
	}
	switch rep.MsgType {
	case "text":
		rep.Content = x.Content
		if rep.Content == "" {
			return fmt.Errorf("%w: empty text Content", ErrBadReply)
		}
	case "image", "voice":
		m := x.Image
		if rep.MsgType == "voice" {
			m = x.Voice
		}
		if m == nil || m.MediaId == "" {
			return fmt.Errorf("%w: %s reply without MediaId", ErrBadReply, rep.MsgType)
		}
		rep.MediaID = m.MediaId
	case "video":
		if x.Video == nil || x.Video.MediaId == "" {
			return fmt.Errorf("%w: video reply without MediaId", ErrBadReply)
		}
		rep.MediaID, rep.Title, rep.Description = x.Video.MediaId, x.Video.Title, x.Video.Description
	case "music":
		if x.Music == nil || x.Music.ThumbMediaId == "" {
			return fmt.Errorf("%w: music reply without ThumbMediaId", ErrBadReply)
		}
		m := x.Music
		rep.Title, rep.Description, rep.MusicURL, rep.HQMusicURL, rep.ThumbMediaID = m.Title, m.Description, m.MusicUrl, m.HQMusicUrl, m.ThumbMediaId
	case "news":
		if x.Articles == nil || len(x.Articles.Items) == 0 || len(x.Articles.Items) > 8 {
			return fmt.Errorf("%w: news reply needs 1..8 articles", ErrBadReply)
		}
		if strings.TrimSpace(x.ArticleCount) != fmt.Sprint(len(x.Articles.Items)) {
			return fmt.Errorf("%w: ArticleCount %q but %d items", ErrBadReply, x.ArticleCount, len(x.Articles.Items))
		}
		for _, it := range x.Articles.Items {
			rep.Articles = append(rep.Articles, ReplyArticle{Title: it.Title, Description: it.Description, PicURL: it.PicUrl, URL: it.Url})
		}
	case "transfer_customer_service":
		if x.TransInfo != nil {
			rep.KfAccount = x.TransInfo.KfAccount
		}
	}
	return nil
}

// clip shortens a body for error messages.
func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
