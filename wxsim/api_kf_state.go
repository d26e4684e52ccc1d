package wxsim

import (
	"fmt"
	"time"
)

// WeChat KF platform state (WECHAT.md §4): per open_kfid an append-only
// message stream read with sync_msg cursors, per customer a session with
// the service_state machine, the send quota (5 per customer message within
// 48 h) and the single-use msg_codes.

// KF session states (service_state).
const (
	KFStateUntreated = 0 // 未处理: new session
	KFStateBot       = 1 // 由智能助手接待: API may reply
	KFStateQueue     = 2 // 待接入池排队中
	KFStateHuman     = 3 // 由人工接待
	KFStateEnded     = 4 // 已结束 / not started
)

// KF msg origins in sync_msg.
const (
	KFOriginCustomer = 3
	KFOriginSystem   = 4
	KFOriginServicer = 5
)

// msg_send_fail fail_type values the simulator produces.
const (
	KFFailExpired   = 4 // session older than 48 h
	KFFailOverLimit = 6 // more than 5 messages per customer message
)

type kfCorpState struct {
	corpID    string
	secret    string
	token     *accessToken
	servicers map[string]int // userid → status (0 接待中, 1 停止接待)
	noToken   []time.Time    // sync_msg calls without a token
}

type kfAccount struct {
	openKfID  string
	corpID    string
	msgs      []KFMsg
	sessions  map[string]*kfSession
	syncToken map[string]time.Time // callback token → expiry
	syncCalls int                  // calls that had messages pending
}

type kfSession struct {
	state    int
	servicer string
	// windowUntil/left implement "≤5 messages within 48 h of a customer message".
	windowUntil  time.Time
	left         int
	lastCustomer time.Time
	// gaveQueueCode/gaveServeCode: codes are returned only on the *first*
	// change to 2/3 within one session.
	gaveQueueCode bool
	gaveServeCode bool
}

type kfCodeKind int

const (
	codeWelcome kfCodeKind = iota + 1
	codeQueue
	codeServe
	codeEnd
)

type kfCode struct {
	value    string
	kind     kfCodeKind
	openKfID string
	user     string
	state    int // required service_state at use (-1: any, welcome)
	expires  time.Time
	used     bool
}

// KFMsg is one entry of a KF account's sync_msg stream, in the documented
// JSON shape.
type KFMsg struct {
	MsgID          string      `json:"msgid"`
	OpenKfID       string      `json:"open_kfid"`
	ExternalUserID string      `json:"external_userid,omitempty"`
	SendTime       int64       `json:"send_time"`
	Origin         int         `json:"origin"`
	ServicerUserID string      `json:"servicer_userid,omitempty"`
	MsgType        string      `json:"msgtype"`
	Text           *KFText     `json:"text,omitempty"`
	Event          *KFEventMsg `json:"event,omitempty"`
}

// KFText is a text message body; MenuID is set when the text is a msgmenu click.
type KFText struct {
	Content string `json:"content"`
	MenuID  string `json:"menu_id,omitempty"`
}

// KFEventMsg is the body of an origin-4 event message.
type KFEventMsg struct {
	EventType         string `json:"event_type"`
	OpenKfID          string `json:"open_kfid"`
	ExternalUserID    string `json:"external_userid"`
	Scene             string `json:"scene,omitempty"`
	SceneParam        string `json:"scene_param,omitempty"`
	WelcomeCode       string `json:"welcome_code,omitempty"`
	FailMsgID         string `json:"fail_msgid,omitempty"`
	FailType          *int   `json:"fail_type,omitempty"`
	ServicerUserID    string `json:"servicer_userid,omitempty"`
	ChangeType        int    `json:"change_type,omitempty"`
	OldServicerUserID string `json:"old_servicer_userid,omitempty"`
	NewServicerUserID string `json:"new_servicer_userid,omitempty"`
	MsgCode           string `json:"msg_code,omitempty"`
}

// AddKFCorp registers WeChat KF for a corp (its secret, accounts, servicers).
func (a *API) AddKFCorp(c KFCorp) {
	a.mu.Lock()
	defer a.mu.Unlock()
	kc := a.kfCorps[c.CorpID]
	if kc == nil {
		kc = &kfCorpState{corpID: c.CorpID, servicers: map[string]int{}}
		a.kfCorps[c.CorpID] = kc
	}
	kc.secret = c.Secret
	for _, s := range c.Servicers {
		kc.servicers[s] = 0
	}
	for _, id := range c.Accounts {
		if a.kfAccts[id] == nil {
			a.kfAccts[id] = &kfAccount{openKfID: id, corpID: c.CorpID, sessions: map[string]*kfSession{}, syncToken: map[string]time.Time{}}
		}
	}
}

// SetServicerStatus sets a reception person's status: 0 正在接待, 1 停止接待.
// Only status 0 servicers can be assigned with service_state/trans to 3.
func (a *API) SetServicerStatus(corpID, userID string, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if kc := a.kfCorps[corpID]; kc != nil {
		kc.servicers[userID] = status
	}
}

func (a *API) kfAccountLocked(openKfID string) (*kfAccount, error) {
	acc := a.kfAccts[openKfID]
	if acc == nil {
		return nil, fmt.Errorf("wxsim: unknown open_kfid %q (register it in KFCorp.Accounts)", openKfID)
	}
	return acc, nil
}

func (acc *kfAccount) session(user string) *kfSession {
	s := acc.sessions[user]
	if s == nil {
		s = &kfSession{state: KFStateEnded} // "已结束: 会话已经结束或未开始"
		acc.sessions[user] = s
	}
	return s
}

// appendLocked adds a message to the stream and returns a fresh callback
// token (valid 10 min) for the kf_msg_or_event signal.
func (a *API) appendLocked(acc *kfAccount, m KFMsg) string {
	if m.MsgID == "" {
		m.MsgID = a.nextID("msg")
	}
	// Event messages carry open_kfid/external_userid only inside "event"
	// (silenceper's BaseMessage notes the top-level fields are absent).
	if m.MsgType != "event" {
		m.OpenKfID = acc.openKfID
	}
	acc.msgs = append(acc.msgs, m)
	tok := a.nextID("ENC")
	acc.syncToken[tok] = a.nowLocked().Add(10 * time.Minute)
	return tok
}

func (a *API) newCodeLocked(kind kfCodeKind, acc *kfAccount, user string, state int, ttl time.Duration) string {
	c := &kfCode{value: a.nextID("CODE"), kind: kind, openKfID: acc.openKfID, user: user, state: state, expires: a.nowLocked().Add(ttl)}
	a.kfCodes[c.value] = c
	return c.value
}

// customerMessageLocked applies a customer message to the session: an ended
// session reopens as 未处理, and the 5-message/48 h quota resets.
func (a *API) customerMessageLocked(acc *kfAccount, user string) {
	s, now := acc.session(user), a.nowLocked()
	if s.state == KFStateEnded {
		*s = kfSession{state: KFStateUntreated}
	}
	s.windowUntil, s.left, s.lastCustomer = now.Add(48*time.Hour), 5, now
}

// KFCustomerSends injects a text from a WeChat customer into openKfID and
// returns the callback token (for KFClient.SendEvent) and the msgid.
func (a *API) KFCustomerSends(openKfID, externalUserID, text string) (token, msgID string, err error) {
	return a.kfCustomer(openKfID, externalUserID, &KFText{Content: text})
}

// KFCustomerClicksMenu injects the text WeChat produces when the customer
// taps a msgmenu item (text with menu_id). It counts as a customer message.
func (a *API) KFCustomerClicksMenu(openKfID, externalUserID, menuID, content string) (token, msgID string, err error) {
	return a.kfCustomer(openKfID, externalUserID, &KFText{Content: content, MenuID: menuID})
}

func (a *API) kfCustomer(openKfID, user string, t *KFText) (string, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acc, err := a.kfAccountLocked(openKfID)
	if err != nil {
		return "", "", err
	}
	a.customerMessageLocked(acc, user)
	id := a.nextID("msg")
	tok := a.appendLocked(acc, KFMsg{MsgID: id, ExternalUserID: user, SendTime: a.nowLocked().Unix(), Origin: KFOriginCustomer, MsgType: "text", Text: t})
	return tok, id, nil
}

// KFCustomerEnters injects an enter_session event (the customer opened the
// chat from scene). A welcome_code (20 s, single use) is included when the
// customer had no message in the last 48 h, as documented.
func (a *API) KFCustomerEnters(openKfID, externalUserID, scene, sceneParam string) (token, welcomeCode string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acc, err := a.kfAccountLocked(openKfID)
	if err != nil {
		return "", "", err
	}
	s, now := acc.session(externalUserID), a.nowLocked()
	if s.lastCustomer.IsZero() || now.Sub(s.lastCustomer) >= 48*time.Hour {
		welcomeCode = a.newCodeLocked(codeWelcome, acc, externalUserID, -1, 20*time.Second)
	}
	ev := &KFEventMsg{EventType: "enter_session", OpenKfID: openKfID, ExternalUserID: externalUserID, Scene: scene, SceneParam: sceneParam, WelcomeCode: welcomeCode}
	token = a.appendLocked(acc, KFMsg{SendTime: now.Unix(), Origin: KFOriginSystem, MsgType: "event", Event: ev})
	return token, welcomeCode, nil
}

// KFAgentSends injects a message typed by servicer in the WeCom client
// (origin 5). Per the doc, a successful agent message in an ended session
// moves it to 由人工接待.
func (a *API) KFAgentSends(openKfID, externalUserID, servicer, text string) (token string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acc, err := a.kfAccountLocked(openKfID)
	if err != nil {
		return "", err
	}
	s := acc.session(externalUserID)
	if s.state == KFStateEnded {
		s.state, s.servicer = KFStateHuman, servicer
	}
	a.deliver(Sent{At: a.nowLocked(), Channel: "kf", Account: openKfID, To: externalUserID, MsgType: "text", Content: text})
	return a.appendLocked(acc, KFMsg{ExternalUserID: externalUserID, SendTime: a.nowLocked().Unix(), Origin: KFOriginServicer, ServicerUserID: servicer, MsgType: "text", Text: &KFText{Content: text}}), nil
}

// KFAgentEndsSession simulates the servicer ending the session in the WeCom
// client: state 4 and a session_status_change event (change_type 3) whose
// msg_code is valid for 20 s.
func (a *API) KFAgentEndsSession(openKfID, externalUserID string) (token, msgCode string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acc, err := a.kfAccountLocked(openKfID)
	if err != nil {
		return "", "", err
	}
	s := acc.session(externalUserID)
	old := s.servicer
	s.state, s.servicer = KFStateEnded, ""
	msgCode = a.newCodeLocked(codeEnd, acc, externalUserID, KFStateEnded, 20*time.Second)
	ev := &KFEventMsg{EventType: "session_status_change", OpenKfID: openKfID, ExternalUserID: externalUserID, ChangeType: 3, OldServicerUserID: old, MsgCode: msgCode}
	token = a.appendLocked(acc, KFMsg{SendTime: a.nowLocked().Unix(), Origin: KFOriginSystem, MsgType: "event", Event: ev})
	return token, msgCode, nil
}

// KFState returns the session state and servicer of a customer.
func (a *API) KFState(openKfID, externalUserID string) (state int, servicer string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	acc := a.kfAccts[openKfID]
	if acc == nil {
		return KFStateEnded, ""
	}
	s := acc.session(externalUserID)
	return s.state, s.servicer
}
