package wxsim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// KF error codes. 95000, 95001 and 95004 are documented (silenceper's
// kf/error.go, third-party code); the others are the simulator's choice
// because no source states the real code — gateways should match on these
// constants, not literals, so a later correction is one edit.
const (
	ErrKFInvalidOpenKfID   = 95000 // open_kfid missing/malformed
	ErrKFSendCountLimit    = 95001 // >5 messages per customer message
	ErrKFSendTimeLimit     = 95002 // more than 48 h after the customer's last message [unverified code]
	ErrKFOpenKfIDNotExist  = 95004 // unknown open_kfid, or another corp's
	ErrKFInvalidMsgToken   = 95007 // sync_msg token unknown/expired [unverified code]
	ErrKFInvalidServicer   = 95014 // servicer_userid missing, unknown or not 正在接待 [unverified code]
	ErrKFBadTransition     = 95016 // service_state change not allowed [unverified code]
	ErrKFStateForbidsSend  = 95018 // send_msg outside service_state 0/1 [unverified code]
	ErrKFInvalidMsgCode    = 95019 // send_msg_on_event code unknown/used/expired/state changed [unverified code]
	ErrInvalidExternalUser = 40096 // external_userid missing/invalid
)

func init() {
	register("/cgi-bin/kf/sync_msg", route{method: http.MethodPost, auth: tokKF, h: (*API).hKFSyncMsg})
	register("/cgi-bin/kf/send_msg", route{method: http.MethodPost, auth: tokKF, h: (*API).hKFSendMsg})
	register("/cgi-bin/kf/send_msg_on_event", route{method: http.MethodPost, auth: tokKF, h: (*API).hKFSendOnEvent})
	register("/cgi-bin/kf/service_state/get", route{method: http.MethodPost, auth: tokKF, h: (*API).hKFStateGet})
	register("/cgi-bin/kf/service_state/trans", route{method: http.MethodPost, auth: tokKF, h: (*API).hKFStateTrans})
}

// kfAccountFor resolves open_kfid for the calling corp.
func (a *API) kfAccountFor(c *reqCtx, openKfID string) (*kfAccount, *apiError) {
	if openKfID == "" {
		return nil, errc(ErrKFInvalidOpenKfID, "invalid open_kfid: missing")
	}
	acc := a.kfAccts[openKfID]
	if acc == nil || acc.corpID != c.tok.owner {
		return nil, errc(ErrKFOpenKfIDNotExist, "open_kfid not exist")
	}
	return acc, nil
}

// Cursors are opaque to callers but bound to their account, so a cursor
// persisted under the wrong open_kfid is caught.
func kfCursor(openKfID string, pos int) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(openKfID))
	return fmt.Sprintf("4gw%08x%s", h.Sum32(), strconv.FormatInt(int64(pos)+46656, 36))
}

func parseKFCursor(openKfID, cur string) (int, bool) {
	prefix := kfCursor(openKfID, 0)[:11]
	if !strings.HasPrefix(cur, prefix) {
		return 0, false
	}
	n, err := strconv.ParseInt(cur[11:], 36, 64)
	if err != nil || n < 46656 {
		return 0, false
	}
	return int(n - 46656), true
}

func (a *API) hKFSyncMsg(c *reqCtx) (map[string]any, *apiError) {
	var req struct {
		Cursor      string `json:"cursor"`
		Token       string `json:"token"`
		Limit       int    `json:"limit"`
		VoiceFormat int    `json:"voice_format"`
		OpenKfID    string `json:"open_kfid"`
	}
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	acc, e := a.kfAccountFor(c, req.OpenKfID)
	if e != nil {
		return nil, e
	}
	switch {
	case req.Limit == 0:
		req.Limit = 1000
	case req.Limit < 0 || req.Limit > 1000:
		return nil, errc(40058, "invalid parameter: limit must be 1..1000")
	}
	if req.VoiceFormat != 0 && req.VoiceFormat != 1 {
		return nil, errc(40058, "invalid parameter: voice_format must be 0 or 1")
	}
	if req.Token != "" {
		exp, ok := acc.syncToken[req.Token]
		if !ok || !c.now.Before(exp) {
			return nil, errc(ErrKFInvalidMsgToken, "invalid msg token (unknown, other account, or older than 10 min)")
		}
	} else {
		kc := a.kfCorps[acc.corpID]
		var recent []time.Time
		for _, t := range kc.noToken {
			if c.now.Sub(t) < time.Minute {
				recent = append(recent, t)
			}
		}
		if len(recent) >= a.opts.KFNoTokenPerMin {
			kc.noToken = recent
			return nil, errc(45009, "api freq out of limit: sync_msg without token is strictly limited")
		}
		kc.noToken = append(recent, c.now)
	}
	pos := 0
	if req.Cursor != "" {
		p, ok := parseKFCursor(acc.openKfID, req.Cursor)
		if !ok || p > len(acc.msgs) {
			return nil, errc(40058, "invalid parameter: cursor")
		}
		pos = p
	}
	list := []KFMsg{}
	hasMore := 0
	if pos < len(acc.msgs) {
		acc.syncCalls++
		if a.opts.KFEmptyPageEvery > 0 && acc.syncCalls%a.opts.KFEmptyPageEvery == 0 {
			// Documented quirk: has_more=1 with an empty list.
			c.note("empty page with has_more=1")
			return map[string]any{"next_cursor": kfCursor(acc.openKfID, pos), "has_more": 1, "msg_list": list}, nil
		}
		n := min(req.Limit, a.opts.KFPageSize, len(acc.msgs)-pos)
		list = append(list, acc.msgs[pos:pos+n]...)
		pos += n
		if pos < len(acc.msgs) {
			hasMore = 1
		}
	}
	return map[string]any{"next_cursor": kfCursor(acc.openKfID, pos), "has_more": hasMore, "msg_list": list}, nil
}

var kfMsgIDRe = regexp.MustCompile(`^[0-9a-zA-Z_-]{0,32}$`)

type kfMenu struct {
	HeadContent string `json:"head_content"`
	List        []struct {
		Type  string `json:"type"`
		Click *struct {
			ID      string `json:"id"`
			Content string `json:"content"`
		} `json:"click"`
		View *struct {
			URL     string `json:"url"`
			Content string `json:"content"`
		} `json:"view"`
		MiniProgram *struct {
			AppID    string `json:"appid"`
			PagePath string `json:"pagepath"`
			Content  string `json:"content"`
		} `json:"miniprogram"`
	} `json:"list"`
	TailContent string `json:"tail_content"`
}

type kfSendReq struct {
	ToUser   string `json:"touser"`
	OpenKfID string `json:"open_kfid"`
	MsgID    string `json:"msgid"`
	Code     string `json:"code"` // send_msg_on_event
	MsgType  string `json:"msgtype"`
	Text     *struct {
		Content string `json:"content"`
	} `json:"text"`
	Image *struct {
		MediaID string `json:"media_id"`
	} `json:"image"`
	Voice *struct {
		MediaID string `json:"media_id"`
	} `json:"voice"`
	Video *struct {
		MediaID string `json:"media_id"`
	} `json:"video"`
	File *struct {
		MediaID string `json:"media_id"`
	} `json:"file"`
	Link *struct {
		Title        string `json:"title"`
		Desc         string `json:"desc"`
		URL          string `json:"url"`
		ThumbMediaID string `json:"thumb_media_id"`
	} `json:"link"`
	MiniProgram *struct {
		AppID        string `json:"appid"`
		Title        string `json:"title"`
		ThumbMediaID string `json:"thumb_media_id"`
		PagePath     string `json:"pagepath"`
	} `json:"miniprogram"`
	MsgMenu  *kfMenu `json:"msgmenu"`
	Location *struct {
		Name      string  `json:"name"`
		Address   string  `json:"address"`
		Latitude  float64 `json:"latitude"`
		Longitude float64 `json:"longitude"`
	} `json:"location"`
}

// validate checks the message body (shared by send_msg and
// send_msg_on_event) and fills s with what the customer sees.
func (req *kfSendReq) validate(s *Sent) *apiError {
	if !kfMsgIDRe.MatchString(req.MsgID) {
		return errc(40058, "invalid parameter: msgid must be ≤32 bytes of [0-9a-zA-Z_-]")
	}
	s.MsgType = req.MsgType
	media := func(m *struct {
		MediaID string `json:"media_id"`
	}) *apiError {
		if m == nil || m.MediaID == "" {
			return errc(40007, "invalid media_id")
		}
		s.MediaID = m.MediaID
		return nil
	}
	switch req.MsgType {
	case "text":
		if req.Text == nil {
			return missing("text")
		}
		if req.Text.Content == "" {
			return errc(44004, "empty content")
		}
		if len(req.Text.Content) > 2048 {
			return errc(40058, fmt.Sprintf("invalid parameter: text content is %d bytes, limit 2048", len(req.Text.Content)))
		}
		s.Content = req.Text.Content
	case "image":
		return media(req.Image)
	case "voice":
		return media(req.Voice)
	case "video":
		return media(req.Video)
	case "file":
		return media(req.File)
	case "link":
		l := req.Link
		if l == nil || l.Title == "" || l.URL == "" || l.ThumbMediaID == "" {
			return errc(40058, "invalid parameter: link needs title, url and thumb_media_id")
		}
		s.Content = l.Title + " " + l.URL
	case "miniprogram":
		m := req.MiniProgram
		if m == nil || m.AppID == "" || m.ThumbMediaID == "" || m.PagePath == "" {
			return errc(40058, "invalid parameter: miniprogram needs appid, thumb_media_id and pagepath")
		}
		s.Content = m.Title
	case "location":
		if req.Location == nil || (req.Location.Latitude == 0 && req.Location.Longitude == 0) {
			return errc(40058, "invalid parameter: location needs latitude and longitude")
		}
		s.Content = req.Location.Name + " " + req.Location.Address
	case "msgmenu":
		m := req.MsgMenu
		if m == nil {
			return missing("msgmenu")
		}
		if len(m.HeadContent) > 1024 || len(m.TailContent) > 1024 {
			return errc(40058, "invalid parameter: head_content/tail_content ≤1024 bytes")
		}
		if len(m.List) > 10 {
			return errc(40058, fmt.Sprintf("invalid parameter: msgmenu has %d items, limit 10", len(m.List)))
		}
		for i, it := range m.List {
			switch {
			case it.Type == "click" && it.Click != nil:
				if len(it.Click.ID) < 1 || len(it.Click.ID) > 64 || len(it.Click.Content) < 1 || len(it.Click.Content) > 128 {
					return errc(40058, fmt.Sprintf("invalid parameter: list[%d].click id 1..64 bytes, content 1..128 bytes", i))
				}
				s.Menu = append(s.Menu, MenuOption{ID: it.Click.ID, Content: it.Click.Content})
			case it.Type == "view" && it.View != nil && it.View.URL != "" && it.View.Content != "":
				s.Menu = append(s.Menu, MenuOption{Content: it.View.Content + " <" + it.View.URL + ">"})
			case it.Type == "miniprogram" && it.MiniProgram != nil && it.MiniProgram.AppID != "" && it.MiniProgram.Content != "":
				s.Menu = append(s.Menu, MenuOption{Content: it.MiniProgram.Content})
			default:
				return errc(40058, fmt.Sprintf("invalid parameter: list[%d] must be click/view/miniprogram with its object", i))
			}
		}
		if len(m.List) == 0 && m.HeadContent == "" && m.TailContent == "" {
			return errc(44004, "empty content")
		}
		s.Head, s.Tail = m.HeadContent, m.TailContent
		s.Content = menuText(s.Head, s.Menu, s.Tail)
	case "":
		return errc(40008, "invalid message type: msgtype missing")
	default:
		return errc(40008, "invalid message type")
	}
	return nil
}

func (a *API) hKFSendMsg(c *reqCtx) (map[string]any, *apiError) {
	var req kfSendReq
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	acc, e := a.kfAccountFor(c, req.OpenKfID)
	if e != nil {
		return nil, e
	}
	if req.ToUser == "" {
		return nil, errc(ErrInvalidExternalUser, "invalid external userid: touser missing")
	}
	s := Sent{At: c.now, Channel: "kf", Account: acc.openKfID, To: req.ToUser, Raw: c.body}
	if e := req.validate(&s); e != nil {
		return nil, e
	}
	if req.MsgID == "" {
		req.MsgID = a.nextID("kfmsg")
	}
	sess := acc.session(req.ToUser)
	if sess.state != KFStateUntreated && sess.state != KFStateBot {
		return nil, errc(ErrKFStateForbidsSend, fmt.Sprintf("send_msg not allowed in service_state %d (only 0 or 1)", sess.state))
	}
	fail := func(failType, code int, msg string) (map[string]any, *apiError) {
		ft := failType
		ev := &KFEventMsg{EventType: "msg_send_fail", OpenKfID: acc.openKfID, ExternalUserID: req.ToUser, FailMsgID: req.MsgID, FailType: &ft}
		tok := a.appendLocked(acc, KFMsg{SendTime: c.now.Unix(), Origin: KFOriginSystem, MsgType: "event", Event: ev})
		if fn := a.kfNote; fn != nil {
			go fn(acc.openKfID, tok)
		}
		c.note(fmt.Sprintf("msg_send_fail fail_type %d appended", failType))
		return nil, errc(code, msg)
	}
	if !c.now.Before(sess.windowUntil) {
		return fail(KFFailExpired, ErrKFSendTimeLimit, "send time out of limit: more than 48 h after the customer's last message")
	}
	if sess.left <= 0 {
		return fail(KFFailOverLimit, ErrKFSendCountLimit, "send count out of limit: at most 5 messages per customer message")
	}
	sess.left--
	s.MsgID = req.MsgID
	a.deliver(s)
	return map[string]any{"msgid": req.MsgID}, nil
}

func (a *API) hKFSendOnEvent(c *reqCtx) (map[string]any, *apiError) {
	var req kfSendReq
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	code := a.kfCodes[req.Code]
	switch {
	case req.Code == "" || code == nil:
		return nil, errc(ErrKFInvalidMsgCode, "invalid code")
	case a.kfAccts[code.openKfID].corpID != c.tok.owner:
		return nil, errc(ErrKFInvalidMsgCode, "invalid code: belongs to another corp")
	case code.used:
		return nil, errc(ErrKFInvalidMsgCode, "invalid code: already used (single use)")
	case !c.now.Before(code.expires):
		return nil, errc(ErrKFInvalidMsgCode, "invalid code: expired")
	}
	acc := a.kfAccts[code.openKfID]
	if code.state >= 0 {
		if st := acc.session(code.user).state; st != code.state {
			return nil, errc(ErrKFInvalidMsgCode, fmt.Sprintf("invalid code: session state is %d, code was issued for %d", st, code.state))
		}
	}
	allowed := map[kfCodeKind][]string{codeWelcome: {"text", "msgmenu"}, codeEnd: {"text", "msgmenu"}, codeQueue: {"text"}, codeServe: {"text"}}[code.kind]
	okType := false
	for _, t := range allowed {
		okType = okType || t == req.MsgType
	}
	if !okType {
		return nil, errc(40008, fmt.Sprintf("invalid message type %q for this code (allowed: %s)", req.MsgType, strings.Join(allowed, ", ")))
	}
	s := Sent{At: c.now, Channel: "kf_event", Account: acc.openKfID, To: code.user, Raw: c.body}
	if e := req.validate(&s); e != nil {
		return nil, e
	}
	if req.MsgID == "" {
		req.MsgID = a.nextID("kfmsg")
	}
	code.used = true
	s.MsgID = req.MsgID
	a.deliver(s)
	return map[string]any{"msgid": req.MsgID}, nil
}

func (a *API) hKFStateGet(c *reqCtx) (map[string]any, *apiError) {
	var req struct {
		OpenKfID       string `json:"open_kfid"`
		ExternalUserID string `json:"external_userid"`
	}
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	acc, e := a.kfAccountFor(c, req.OpenKfID)
	if e != nil {
		return nil, e
	}
	if req.ExternalUserID == "" {
		return nil, errc(ErrInvalidExternalUser, "invalid external userid")
	}
	s := acc.session(req.ExternalUserID)
	return map[string]any{"service_state": s.state, "servicer_userid": s.servicer}, nil
}

// kfTransitions is WECHAT.md §4.3: 0→1/2/3/4, 1→1/2/3/4, 2→2/3/4, 3→3/4, 4 → none.
var kfTransitions = map[int][]int{
	KFStateUntreated: {1, 2, 3, 4},
	KFStateBot:       {1, 2, 3, 4},
	KFStateQueue:     {2, 3, 4},
	KFStateHuman:     {3, 4},
}

func (a *API) hKFStateTrans(c *reqCtx) (map[string]any, *apiError) {
	var req struct {
		OpenKfID       string `json:"open_kfid"`
		ExternalUserID string `json:"external_userid"`
		ServiceState   *int   `json:"service_state"`
		ServicerUserID string `json:"servicer_userid"`
	}
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	acc, e := a.kfAccountFor(c, req.OpenKfID)
	if e != nil {
		return nil, e
	}
	if req.ExternalUserID == "" {
		return nil, errc(ErrInvalidExternalUser, "invalid external userid")
	}
	if req.ServiceState == nil {
		return nil, errc(40058, "invalid parameter: service_state missing")
	}
	to := *req.ServiceState
	s := acc.session(req.ExternalUserID)
	ok := false
	for _, t := range kfTransitions[s.state] {
		ok = ok || t == to
	}
	if !ok {
		return nil, errc(ErrKFBadTransition, fmt.Sprintf("service_state change %d → %d not allowed", s.state, to))
	}
	if to == KFStateHuman {
		st, known := a.kfCorps[acc.corpID].servicers[req.ServicerUserID]
		if req.ServicerUserID == "" || !known || st != 0 {
			return nil, errc(ErrKFInvalidServicer, "invalid servicer_userid: required for state 3 and must be a reception person who is 正在接待")
		}
	}
	from := s.state
	s.state = to
	if to == KFStateHuman {
		s.servicer = req.ServicerUserID
	} else {
		s.servicer = ""
	}
	out := map[string]any{}
	var code string
	switch {
	case to == KFStateQueue && from != to && !s.gaveQueueCode:
		s.gaveQueueCode = true
		code = a.newCodeLocked(codeQueue, acc, req.ExternalUserID, KFStateQueue, 48*time.Hour)
	case to == KFStateHuman && from != to && !s.gaveServeCode:
		s.gaveServeCode = true
		code = a.newCodeLocked(codeServe, acc, req.ExternalUserID, KFStateHuman, 48*time.Hour)
	case to == KFStateEnded:
		code = a.newCodeLocked(codeEnd, acc, req.ExternalUserID, KFStateEnded, 20*time.Second)
	}
	if code != "" {
		out["msg_code"] = code
	}
	return out, nil
}

// KFMessages returns a copy of an account's sync_msg stream (for tests).
func (a *API) KFMessages(openKfID string) []KFMsg {
	a.mu.Lock()
	defer a.mu.Unlock()
	if acc := a.kfAccts[openKfID]; acc != nil {
		b, _ := json.Marshal(acc.msgs)
		var out []KFMsg
		_ = json.Unmarshal(b, &out)
		return out
	}
	return nil
}
