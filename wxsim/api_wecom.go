package wxsim

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WeCom outbound rules (WECHAT.md §3.2, §3.3):
//   - message/send: agentid must be the token's app (else 301002); text and
//     markdown are truncated at 2048 bytes as documented; at most 30
//     messages per member per minute and 1000 per hour per app — the excess
//     is silently dropped (errcode 0, not delivered); enable_duplicate_check
//     suppresses identical messages within duplicate_check_interval.
//   - webhook/send: unknown key → 93000; ≤20 messages per minute per key
//     (→ 45009); text ≤2048 bytes, markdown ≤4096 bytes (→ 40058).

func init() {
	register("/cgi-bin/message/send", route{method: http.MethodPost, auth: tokWeCom, h: (*API).hWeComSend})
	register("/cgi-bin/webhook/send", route{method: http.MethodPost, h: (*API).hRobotSend})
}

type wecomState struct {
	app       WeComApp
	token     *accessToken
	perMember map[string][]time.Time // delivered message times, last hour
	dedupe    map[string]time.Time
}

type robotState struct {
	sent []time.Time
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

func (a *API) hWeComSend(c *reqCtx) (map[string]any, *apiError) {
	var req struct {
		ToUser   string                    `json:"touser"`
		ToParty  string                    `json:"toparty"`
		ToTag    string                    `json:"totag"`
		MsgType  string                    `json:"msgtype"`
		AgentID  json.RawMessage           `json:"agentid"`
		Text     *struct{ Content string } `json:"text"`
		Markdown *struct{ Content string } `json:"markdown"`
		TextCard *struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			URL         string `json:"url"`
			BtnTxt      string `json:"btntxt"`
		} `json:"textcard"`
		EnableDuplicateCheck   int `json:"enable_duplicate_check"`
		DuplicateCheckInterval int `json:"duplicate_check_interval"`
	}
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	var w *wecomState
	for _, s := range a.wecom {
		if s.token == c.tok {
			w = s
		}
	}
	if w == nil {
		return nil, errc(40014, "invalid access_token")
	}
	agentID, e := parseAgentID(req.AgentID, a.opts.StrictAgentID)
	if e != nil {
		return nil, e
	}
	if agentID != w.app.AgentID {
		return nil, errc(301002, "not allow operate another agent with this accesstoken")
	}
	s := Sent{At: c.now, Channel: "wecom", Account: strconv.FormatInt(agentID, 10), MsgType: req.MsgType, Raw: c.body}
	switch req.MsgType {
	case "text", "markdown":
		body := req.Text
		if req.MsgType == "markdown" {
			body = req.Markdown
		}
		if body == nil {
			return nil, missing(req.MsgType)
		}
		if body.Content == "" {
			return nil, errc(44004, "empty content")
		}
		s.Content = truncateUTF8(body.Content, 2048)
		if len(s.Content) < len(body.Content) {
			c.note(fmt.Sprintf("content truncated from %d to %d bytes", len(body.Content), len(s.Content)))
		}
	case "textcard":
		tc := req.TextCard
		if tc == nil {
			return nil, missing("textcard")
		}
		if tc.Title == "" || tc.Description == "" || tc.URL == "" {
			return nil, errc(40058, "invalid parameter: textcard needs title, description and url")
		}
		if len(tc.Title) > 128 || len(tc.Description) > 512 || len([]rune(tc.BtnTxt)) > 4 {
			return nil, errc(40058, "invalid parameter: textcard title ≤128 bytes, description ≤512 bytes, btntxt ≤4 chars")
		}
		s.Content = tc.Title + "\n" + tc.Description + "\n" + tc.URL
	case "":
		return nil, errc(40008, "invalid message type: msgtype missing")
	default:
		return nil, errc(40008, "invalid message type (simulator supports text, markdown, textcard)")
	}
	users := []string{}
	if req.ToUser != "" {
		users = strings.Split(req.ToUser, "|")
	}
	if len(users) > 1000 {
		return nil, errc(40058, "invalid parameter: touser allows at most 1000 users")
	}
	var valid, invalid []string
	for _, u := range users {
		switch {
		case u == "@all" && w.app.Members != nil:
			valid = append(valid, w.app.Members...)
		case u == "@all", w.app.Members == nil, slices.Contains(w.app.Members, u):
			valid = append(valid, u)
		default:
			invalid = append(invalid, u)
		}
	}
	if len(valid) == 0 && req.ToParty == "" && req.ToTag == "" {
		return nil, errc(81013, "user & party & tag all invalid")
	}
	if req.ToParty != "" || req.ToTag != "" {
		c.note("toparty/totag accepted but not expanded by the simulator")
	}
	out := map[string]any{"invaliduser": strings.Join(invalid, "|"), "msgid": a.nextID("wcmsg")}
	if req.EnableDuplicateCheck == 1 {
		iv := req.DuplicateCheckInterval
		if iv == 0 {
			iv = 1800
		}
		if iv < 0 || iv > 4*3600 {
			return nil, errc(40058, "invalid parameter: duplicate_check_interval must be ≤ 4 h")
		}
		key := fmt.Sprint(agentID, "\x00", req.MsgType, "\x00", s.Content, "\x00", req.ToUser, "\x00", req.ToParty, "\x00", req.ToTag)
		if at, ok := w.dedupe[key]; ok && c.now.Sub(at) < time.Duration(iv)*time.Second {
			c.note("duplicate suppressed by enable_duplicate_check")
			return out, nil
		}
		w.dedupe[key] = c.now
	}
	s.MsgID = out["msgid"].(string)
	for _, u := range valid {
		var recent []time.Time
		for _, t := range w.perMember[u] {
			if c.now.Sub(t) < time.Hour {
				recent = append(recent, t)
			}
		}
		lastMin := 0
		for _, t := range recent {
			if c.now.Sub(t) < time.Minute {
				lastMin++
			}
		}
		w.perMember[u] = recent
		if lastMin >= 30 || len(recent) >= 1000 {
			c.note("dropped for " + u + ": per-member rate limit (30/min, 1000/h)")
			continue
		}
		w.perMember[u] = append(recent, c.now)
		s.To = u
		a.deliver(s)
	}
	return out, nil
}

// parseAgentID accepts a JSON number, and unless strict a numeric string
// (what silenceper sends).
func parseAgentID(raw json.RawMessage, strict bool) (int64, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errc(40056, "invalid agentid: missing")
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil && !strict {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, errc(40056, "invalid agentid: "+string(raw))
}

func (a *API) hRobotSend(c *reqCtx) (map[string]any, *apiError) {
	key := c.query.Get("key")
	rs := a.robots[key]
	if key == "" || rs == nil {
		return nil, errc(93000, "invalid webhook url")
	}
	var req struct {
		MsgType string `json:"msgtype"`
		Text    *struct {
			Content             string   `json:"content"`
			MentionedList       []string `json:"mentioned_list"`
			MentionedMobileList []string `json:"mentioned_mobile_list"`
		} `json:"text"`
		Markdown *struct {
			Content string `json:"content"`
		} `json:"markdown"`
		Image *struct {
			Base64 string `json:"base64"`
			MD5    string `json:"md5"`
		} `json:"image"`
		News *struct {
			Articles []struct {
				Title  string `json:"title"`
				URL    string `json:"url"`
				PicURL string `json:"picurl"`
			} `json:"articles"`
		} `json:"news"`
		File *struct {
			MediaID string `json:"media_id"`
		} `json:"file"`
		TemplateCard *struct {
			CardType string `json:"card_type"`
		} `json:"template_card"`
	}
	if !json.Valid(c.body) {
		return nil, errc(47001, "data format error")
	}
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	s := Sent{At: c.now, Channel: "robot", Account: key, To: key, MsgType: req.MsgType, Raw: c.body}
	switch req.MsgType {
	case "text":
		if req.Text == nil {
			return nil, missing("text")
		}
		if req.Text.Content == "" {
			return nil, errc(44004, "empty content")
		}
		if len(req.Text.Content) > 2048 {
			return nil, errc(40058, fmt.Sprintf("invalid parameter: text content is %d bytes, limit 2048", len(req.Text.Content)))
		}
		s.Content = req.Text.Content
	case "markdown":
		if req.Markdown == nil {
			return nil, missing("markdown")
		}
		if req.Markdown.Content == "" {
			return nil, errc(44004, "empty content")
		}
		if len(req.Markdown.Content) > 4096 {
			return nil, errc(40058, fmt.Sprintf("invalid parameter: markdown content is %d bytes, limit 4096", len(req.Markdown.Content)))
		}
		s.Content = req.Markdown.Content
	case "image":
		if req.Image == nil {
			return nil, missing("image")
		}
		raw, err := base64.StdEncoding.DecodeString(req.Image.Base64)
		if err != nil || len(raw) == 0 || len(raw) > 2<<20 {
			return nil, errc(40009, "invalid image size (base64, ≤2 MB)")
		}
		sum := md5.Sum(raw)
		if !strings.EqualFold(hex.EncodeToString(sum[:]), req.Image.MD5) {
			return nil, errc(301019, "media md5 not match")
		}
		s.Content = fmt.Sprintf("[image %d bytes]", len(raw))
	case "news":
		if req.News == nil || len(req.News.Articles) == 0 || len(req.News.Articles) > 8 {
			return nil, errc(40058, "invalid parameter: news needs 1..8 articles")
		}
		for _, art := range req.News.Articles {
			if art.Title == "" || art.URL == "" {
				return nil, errc(40058, "invalid parameter: article needs title and url")
			}
		}
		s.Content = req.News.Articles[0].Title
	case "file", "voice":
		if req.File == nil || req.File.MediaID == "" {
			return nil, errc(40007, "invalid media_id")
		}
		s.MediaID = req.File.MediaID
	case "template_card":
		if req.TemplateCard == nil || req.TemplateCard.CardType == "" {
			return nil, errc(40058, "invalid parameter: template_card.card_type")
		}
	case "":
		return nil, errc(40008, "invalid message type: msgtype missing")
	default:
		return nil, errc(40008, "invalid message type")
	}
	var recent []time.Time
	for _, t := range rs.sent {
		if c.now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	rs.sent = recent
	if len(recent) >= 20 {
		return nil, errc(45009, "api freq out of limit: 20 messages per minute per robot")
	}
	rs.sent = append(rs.sent, c.now)
	a.deliver(s)
	return nil, nil
}
