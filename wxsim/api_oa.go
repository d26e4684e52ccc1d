package wxsim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Official Account outbound rules (WECHAT.md §2.1–2.3):
//   - custom/send needs an open window: a user message grants 5 sends
//     within 48 h; follow, QR scan and click/scancode menu events grant 3
//     within 1 min; payment grants unlimited sends for 48 h. Each qualifying
//     action resets its window (no accumulation). msgmenu clicks grant
//     nothing. Outside any window → 45015; window open but its count used
//     up → 45047; account daily cap → 45009.
//   - template/send dedupes openid+client_msg_id for 10 minutes.

func init() {
	oaAuth := []tokenKind{tokOAStable}
	register("/cgi-bin/message/custom/send", route{method: http.MethodPost, auth: tokOA, alsoAuth: oaAuth, h: (*API).hCustomSend})
	register("/cgi-bin/message/custom/typing", route{method: http.MethodPost, auth: tokOA, alsoAuth: oaAuth, h: (*API).hTyping})
	register("/cgi-bin/message/template/send", route{method: http.MethodPost, auth: tokOA, alsoAuth: oaAuth, h: (*API).hTemplateSend})
}

type oaState struct {
	app            OAApp
	current        *accessToken // latest /cgi-bin/token
	stable         *accessToken // latest /cgi-bin/stable_token
	forceRefresh   []time.Time
	users          map[string]*oaUser
	customDay      string
	customCount    int
	templateDedupe map[string]templateSent
}

type templateSent struct {
	at    time.Time
	msgID int64
}

// window is one customer-service sending window.
type window struct {
	until time.Time
	left  int
}

func (w window) open(now time.Time) bool { return now.Before(w.until) }

type oaUser struct {
	msg, evt, pay window
	unsubscribed  bool
	typing        bool
}

// UserInteracted records that openID did something of kind at time at
// towards the Official Account appID, opening or resetting the
// customer-service window the way WeChat does. OAClient calls it
// automatically when its API field is set.
func (a *API) UserInteracted(appID, openID string, kind Interaction, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.oa[appID]
	if st == nil {
		// Unknown app: keep the state anyway so a later AddOAApp… would
		// replace it. Nothing can send without credentials, so this is inert.
		st = &oaState{app: OAApp{AppID: appID, DailyCustomLimit: 500000}, users: map[string]*oaUser{}, templateDedupe: map[string]templateSent{}}
		a.oa[appID] = st
	}
	u := st.users[openID]
	if u == nil {
		u = &oaUser{}
		st.users[openID] = u
	}
	switch kind {
	case InteractMessage:
		u.unsubscribed = false
		u.msg = window{until: at.Add(48 * time.Hour), left: 5}
	case InteractFollow, InteractClick, InteractScan:
		u.unsubscribed = false
		u.evt = window{until: at.Add(time.Minute), left: 3}
	case InteractPayment:
		u.pay = window{until: at.Add(48 * time.Hour)}
	case InteractUnsubscribe:
		*u = oaUser{unsubscribed: true}
	}
}

// OAQuota reports how many custom/send messages openID can still receive
// from appID right now, and whether any window is open (unlimited payment
// windows report left = -1).
func (a *API) OAQuota(appID, openID string) (left int, open bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.oa[appID]
	if st == nil || st.users[openID] == nil {
		return 0, false
	}
	u, now := st.users[openID], a.nowLocked()
	if u.pay.open(now) {
		return -1, true
	}
	if u.evt.open(now) {
		left += u.evt.left
		open = true
	}
	if u.msg.open(now) {
		left += u.msg.left
		open = true
	}
	return left, open
}

// consume takes one send from the user's windows: payment (unlimited),
// then the short event window, then the 48 h message window.
func (u *oaUser) consume(now time.Time) *apiError {
	if u == nil || u.unsubscribed {
		return errc(45015, "response out of time limit or subscription is canceled")
	}
	switch {
	case u.pay.open(now):
		return nil
	case u.evt.open(now) && u.evt.left > 0:
		u.evt.left--
		return nil
	case u.msg.open(now) && u.msg.left > 0:
		u.msg.left--
		return nil
	case u.evt.open(now) || u.msg.open(now):
		return errc(45047, "out of response count limit")
	}
	return errc(45015, "response out of time limit or subscription is canceled")
}

type oaCustomReq struct {
	ToUser  string `json:"touser"`
	MsgType string `json:"msgtype"`
	Text    *struct {
		Content string `json:"content"`
	} `json:"text"`
	Image *struct {
		MediaID string `json:"media_id"`
	} `json:"image"`
	Voice *struct {
		MediaID string `json:"media_id"`
	} `json:"voice"`
	Video *struct {
		MediaID      string `json:"media_id"`
		ThumbMediaID string `json:"thumb_media_id"`
		Title        string `json:"title"`
		Description  string `json:"description"`
	} `json:"video"`
	Music *struct {
		Title        string `json:"title"`
		Description  string `json:"description"`
		MusicURL     string `json:"musicurl"`
		HQMusicURL   string `json:"hqmusicurl"`
		ThumbMediaID string `json:"thumb_media_id"`
	} `json:"music"`
	News *struct {
		Articles []struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			URL         string `json:"url"`
			PicURL      string `json:"picurl"`
		} `json:"articles"`
	} `json:"news"`
	MpNews *struct {
		MediaID string `json:"media_id"`
	} `json:"mpnews"`
	MpNewsArticle *struct {
		ArticleID string `json:"article_id"`
	} `json:"mpnewsarticle"`
	MsgMenu *struct {
		HeadContent string `json:"head_content"`
		List        []struct {
			ID      string `json:"id"`
			Content string `json:"content"`
		} `json:"list"`
		TailContent string `json:"tail_content"`
	} `json:"msgmenu"`
	WxCard *struct {
		CardID string `json:"card_id"`
	} `json:"wxcard"`
	MiniProgramPage *struct {
		Title        string `json:"title"`
		AppID        string `json:"appid"`
		PagePath     string `json:"pagepath"`
		ThumbMediaID string `json:"thumb_media_id"`
	} `json:"miniprogrampage"`
	CustomService *struct {
		KfAccount string `json:"kf_account"`
	} `json:"customservice"`
}

func missing(part string) *apiError {
	return errc(47001, "data format error: missing "+part+" object")
}

// validate checks the message shape and fills s with what the user would see.
func (req *oaCustomReq) validate(app OAApp, s *Sent) *apiError {
	if req.ToUser == "" {
		return errc(40003, "invalid openid")
	}
	s.MsgType = req.MsgType
	switch req.MsgType {
	case "text":
		if req.Text == nil {
			return missing("text")
		}
		if req.Text.Content == "" {
			return errc(44004, "empty content")
		}
		s.Content = req.Text.Content
	case "image", "voice", "mpnews":
		var id *struct {
			MediaID string `json:"media_id"`
		}
		switch req.MsgType {
		case "image":
			id = req.Image
		case "voice":
			id = req.Voice
		default:
			id = req.MpNews
		}
		if id == nil {
			return missing(req.MsgType)
		}
		if id.MediaID == "" {
			return errc(40007, "invalid media_id")
		}
		s.MediaID = id.MediaID
	case "video":
		if req.Video == nil {
			return missing("video")
		}
		if req.Video.MediaID == "" {
			return errc(40007, "invalid media_id")
		}
		s.MediaID, s.Content = req.Video.MediaID, req.Video.Title
	case "music":
		if req.Music == nil {
			return missing("music")
		}
		if req.Music.ThumbMediaID == "" {
			return errc(40007, "invalid media_id: thumb_media_id required")
		}
		s.Content = req.Music.Title
	case "news":
		if req.News == nil {
			return missing("news")
		}
		switch n := len(req.News.Articles); {
		case n == 0:
			return errc(44003, "empty news data")
		case n > 1:
			// Since 2018 custom/send news carries exactly one article.
			return errc(45008, "article size out of limit")
		}
		art := req.News.Articles[0]
		if art.Title == "" && art.Description == "" {
			return errc(44003, "empty news data")
		}
		s.Content = art.Title + " " + art.URL
	case "mpnewsarticle":
		if req.MpNewsArticle == nil || req.MpNewsArticle.ArticleID == "" {
			return missing("mpnewsarticle")
		}
		s.Content = req.MpNewsArticle.ArticleID
	case "msgmenu":
		if req.MsgMenu == nil {
			return missing("msgmenu")
		}
		if app.TestAccount {
			return errc(40200, "invalid account type")
		}
		if len(req.MsgMenu.List) == 0 {
			return errc(47001, "data format error: msgmenu.list is empty")
		}
		for i, it := range req.MsgMenu.List {
			if it.ID == "" || it.Content == "" {
				return errc(47001, fmt.Sprintf("data format error: msgmenu.list[%d] needs id and content", i))
			}
			s.Menu = append(s.Menu, MenuOption{ID: it.ID, Content: it.Content})
		}
		s.Head, s.Tail = req.MsgMenu.HeadContent, req.MsgMenu.TailContent
		s.Content = menuText(s.Head, s.Menu, s.Tail)
	case "wxcard":
		if req.WxCard == nil || req.WxCard.CardID == "" {
			return missing("wxcard")
		}
		s.Content = req.WxCard.CardID
	case "miniprogrampage":
		if req.MiniProgramPage == nil || req.MiniProgramPage.AppID == "" || req.MiniProgramPage.ThumbMediaID == "" {
			return missing("miniprogrampage (appid, thumb_media_id)")
		}
		s.Content = req.MiniProgramPage.Title
	case "":
		return errc(40008, "invalid message type: msgtype missing")
	default:
		return errc(40008, "invalid message type")
	}
	return nil
}

// menuText renders a msgmenu as the customer sees it, for inbox views.
func menuText(head string, items []MenuOption, tail string) string {
	var b strings.Builder
	b.WriteString(head)
	for _, it := range items {
		fmt.Fprintf(&b, "\n[%s] %s", it.ID, it.Content)
	}
	if tail != "" {
		b.WriteString("\n" + tail)
	}
	return b.String()
}

func (a *API) hCustomSend(c *reqCtx) (map[string]any, *apiError) {
	var req oaCustomReq
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	st := a.oa[c.tok.owner]
	s := Sent{At: c.now, Channel: "oa", Account: st.app.AppID, To: req.ToUser, Raw: c.body}
	if e := req.validate(st.app, &s); e != nil {
		return nil, e
	}
	day := cstDay(c.now)
	if st.customDay != day {
		st.customDay, st.customCount = day, 0
	}
	if st.customCount >= st.app.DailyCustomLimit {
		return nil, errc(45009, "reach max api daily quota limit")
	}
	if e := st.users[req.ToUser].consume(c.now); e != nil {
		return nil, e
	}
	st.customCount++
	if u := st.users[req.ToUser]; u != nil {
		u.typing = false
	}
	a.deliver(s)
	return nil, nil
}

func (a *API) hTyping(c *reqCtx) (map[string]any, *apiError) {
	var req struct {
		ToUser  string `json:"touser"`
		Command string `json:"command"`
	}
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	if req.ToUser == "" {
		return nil, errc(40003, "invalid openid")
	}
	if req.Command != "Typing" && req.Command != "CancelTyping" {
		return nil, errc(47001, "data format error: command must be Typing or CancelTyping")
	}
	u := a.oa[c.tok.owner].users[req.ToUser]
	if u == nil || u.unsubscribed || !(u.msg.open(c.now) || u.evt.open(c.now) || u.pay.open(c.now)) {
		return nil, errc(45015, "response out of time limit or subscription is canceled")
	}
	u.typing = req.Command == "Typing"
	return nil, nil
}

// Typing reports whether appID currently shows "typing…" to openID.
func (a *API) Typing(appID, openID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.oa[appID]; st != nil && st.users[openID] != nil {
		return st.users[openID].typing
	}
	return false
}

func (a *API) hTemplateSend(c *reqCtx) (map[string]any, *apiError) {
	var req struct {
		ToUser      string `json:"touser"`
		TemplateID  string `json:"template_id"`
		URL         string `json:"url"`
		MiniProgram *struct {
			AppID    string `json:"appid"`
			PagePath string `json:"pagepath"`
		} `json:"miniprogram"`
		Data map[string]struct {
			Value string `json:"value"`
			Color string `json:"color"`
		} `json:"data"`
		ClientMsgID string `json:"client_msg_id"`
	}
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	st := a.oa[c.tok.owner]
	if req.ToUser == "" {
		return nil, errc(40003, "invalid openid")
	}
	if req.TemplateID == "" || (st.app.Templates != nil && !slices.Contains(st.app.Templates, req.TemplateID)) {
		return nil, errc(40037, "invalid template_id")
	}
	if u := st.users[req.ToUser]; u != nil && u.unsubscribed {
		return nil, errc(43004, "require subscribe")
	}
	if req.ClientMsgID != "" {
		key := req.ToUser + "\x00" + req.ClientMsgID
		if prev, ok := st.templateDedupe[key]; ok && c.now.Sub(prev.at) < 10*time.Minute {
			c.note("deduplicated by client_msg_id")
			return map[string]any{"msgid": prev.msgID}, nil
		}
	}
	a.seq++
	msgID := 2_000_000_000 + a.seq
	if req.ClientMsgID != "" {
		st.templateDedupe[req.ToUser+"\x00"+req.ClientMsgID] = templateSent{at: c.now, msgID: msgID}
	}
	var parts []string
	for _, k := range sortedKeys(req.Data) {
		parts = append(parts, k+": "+req.Data[k].Value)
	}
	a.deliver(Sent{At: c.now, Channel: "oa_template", Account: st.app.AppID, To: req.ToUser, MsgType: "template",
		Content: req.TemplateID + "\n" + strings.Join(parts, "\n"), MsgID: fmt.Sprint(msgID), Raw: c.body})
	return map[string]any{"msgid": msgID}, nil
}
