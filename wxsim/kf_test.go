package wxsim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// syncAll drains an account the way the gateway must: loop while has_more,
// never stop on an empty list. It returns the messages and how many empty
// has_more=1 pages were seen.
func (h *harness) syncAll(tok, openKfID, cursor, syncToken string, limit int) ([]KFMsg, string, int) {
	h.t.Helper()
	var all []KFMsg
	empty := 0
	for i := 0; i < 100; i++ {
		m := h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"cursor": cursor, "token": syncToken, "limit": limit, "open_kfid": openKfID}), 0)
		var page struct {
			NextCursor string  `json:"next_cursor"`
			HasMore    int     `json:"has_more"`
			MsgList    []KFMsg `json:"msg_list"`
		}
		b, _ := json.Marshal(m)
		if err := json.Unmarshal(b, &page); err != nil {
			h.t.Fatal(err)
		}
		if page.MsgList == nil {
			h.t.Fatal("msg_list must be an array, never null")
		}
		if len(page.MsgList) == 0 && page.HasMore == 1 {
			empty++
		}
		all = append(all, page.MsgList...)
		cursor = page.NextCursor
		if page.HasMore == 0 {
			return all, cursor, empty
		}
	}
	h.t.Fatal("sync never finished")
	return nil, "", 0
}

func TestKFSyncPaging(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.KFPageSize = 2; o.KFEmptyPageEvery = 3 })
	tok := h.weComToken(tKFSecret)
	var syncTok string
	for i := 0; i < 7; i++ {
		st, _, err := h.api.KFCustomerSends(tKF, "wmCust1", "msg"+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		syncTok = st
	}
	msgs, cursor, empty := h.syncAll(tok, tKF, "", syncTok, 1000)
	if len(msgs) != 7 || empty == 0 {
		t.Fatalf("got %d messages, %d empty pages", len(msgs), empty)
	}
	for i, m := range msgs {
		if m.Origin != KFOriginCustomer || m.MsgType != "text" || m.Text.Content != "msg"+string(rune('a'+i)) || m.OpenKfID != tKF || m.ExternalUserID != "wmCust1" || m.MsgID == "" || m.SendTime == 0 {
			t.Fatalf("msg %d: %+v", i, m)
		}
	}
	// Resume from the persisted cursor: only new messages.
	_, _, _ = h.api.KFCustomerSends(tKF, "wmCust1", "new")
	more, _, _ := h.syncAll(tok, tKF, cursor, syncTok, 1000)
	if len(more) != 1 || more[0].Text.Content != "new" {
		t.Fatalf("resume: %+v", more)
	}
	// The doc's shape: origin, msgtype, text.content, event.event_type…
	raw := h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"open_kfid": tKF, "token": syncTok, "limit": 1}), 0)
	first := raw["msg_list"].([]any)
	if len(first) == 1 {
		m := first[0].(map[string]any)
		if _, ok := m["text"].(map[string]any)["content"]; !ok || m["origin"].(float64) != 3 {
			t.Fatalf("shape %v", m)
		}
	}

	h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"open_kfid": tKF, "token": syncTok, "limit": 1001}), 40058)
	h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"token": syncTok}), ErrKFInvalidOpenKfID)
	h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"open_kfid": "wkNOPE"}), ErrKFOpenKfIDNotExist)
	h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"open_kfid": "wkKF002", "token": syncTok}), ErrKFInvalidMsgToken)
	h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"open_kfid": "wkKF002", "cursor": cursor, "token": ""}), 40058)
	h.api.Advance(10*time.Minute + time.Second)
	tok = h.weComToken(tKFSecret)
	h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"open_kfid": tKF, "token": syncTok}), ErrKFInvalidMsgToken)
}

func TestKFSyncWithoutTokenIsRateLimited(t *testing.T) {
	h := newHarness(t, func(o *APIOptions) { o.KFNoTokenPerMin = 3 })
	tok := h.weComToken(tKFSecret)
	for i := 0; i < 3; i++ {
		h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"open_kfid": tKF}), 0)
	}
	h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"open_kfid": tKF}), 45009)
	h.api.Advance(time.Minute)
	h.expect(h.post("/cgi-bin/kf/sync_msg", tok, map[string]any{"open_kfid": tKF}), 0)
}

func kfText(to, content string) map[string]any {
	return map[string]any{"touser": to, "open_kfid": tKF, "msgtype": "text", "text": map[string]any{"content": content}}
}

func lastEvent(t *testing.T, api *API, eventType string) *KFEventMsg {
	t.Helper()
	msgs := api.KFMessages(tKF)
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Event != nil && msgs[i].Event.EventType == eventType {
			return msgs[i].Event
		}
	}
	t.Fatalf("no %s event in stream", eventType)
	return nil
}

func TestKFSendMsgQuotaAndWindow(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.weComToken(tKFSecret)
	notified := make(chan string, 4)
	h.api.SetKFNotifier(func(openKfID, token string) { notified <- openKfID })

	h.expect(h.post("/cgi-bin/kf/send_msg", tok, kfText("wmC", "never wrote")), ErrKFStateForbidsSend)
	_, _, _ = h.api.KFCustomerSends(tKF, "wmC", "hi")
	if st, _ := h.api.KFState(tKF, "wmC"); st != KFStateUntreated {
		t.Fatalf("state after first message %d", st)
	}
	for i := 0; i < 5; i++ {
		r := h.expect(h.post("/cgi-bin/kf/send_msg", tok, kfText("wmC", "answer")), 0)
		if r["msgid"] == "" {
			t.Fatal("no msgid")
		}
	}
	over := kfText("wmC", "sixth")
	over["msgid"] = "my-6th"
	h.expect(h.post("/cgi-bin/kf/send_msg", tok, over), ErrKFSendCountLimit)
	if ev := lastEvent(t, h.api, "msg_send_fail"); *ev.FailType != KFFailOverLimit || ev.FailMsgID != "my-6th" {
		t.Fatalf("fail event %+v", ev)
	}
	select {
	case k := <-notified:
		if k != tKF {
			t.Fatal(k)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("notifier not called")
	}
	// Customer writes again: 5 more (not 5 + leftovers).
	_, _, _ = h.api.KFCustomerClicksMenu(tKF, "wmC", "nps_9", "9")
	for i := 0; i < 5; i++ {
		h.expect(h.post("/cgi-bin/kf/send_msg", tok, kfText("wmC", "x")), 0)
	}
	h.expect(h.post("/cgi-bin/kf/send_msg", tok, kfText("wmC", "x")), ErrKFSendCountLimit)
	_, _, _ = h.api.KFCustomerSends(tKF, "wmC", "hello?")
	h.api.Advance(48*time.Hour + time.Second)
	tok = h.weComToken(tKFSecret)
	h.expect(h.post("/cgi-bin/kf/send_msg", tok, kfText("wmC", "late")), ErrKFSendTimeLimit)
	if ev := lastEvent(t, h.api, "msg_send_fail"); *ev.FailType != KFFailExpired {
		t.Fatalf("fail event %+v", ev)
	}
	if n := len(h.api.Inbox("wmC")); n != 10 {
		t.Fatalf("customer saw %d messages, want 10", n)
	}
	// Shapes.
	_, _, _ = h.api.KFCustomerSends(tKF, "wmD", "hi")
	h.expect(h.post("/cgi-bin/kf/send_msg", tok, kfText("wmD", strings.Repeat("a", 2049))), 40058)
	bad := kfText("wmD", "x")
	bad["msgid"] = "has space"
	h.expect(h.post("/cgi-bin/kf/send_msg", tok, bad), 40058)
	items := []any{}
	for i := 0; i < 11; i++ {
		items = append(items, map[string]any{"type": "click", "click": map[string]any{"id": "n" + string(rune('0'+i)), "content": "x"}})
	}
	menu := map[string]any{"touser": "wmD", "open_kfid": tKF, "msgtype": "msgmenu", "msgmenu": map[string]any{"head_content": "评分", "list": items}}
	h.expect(h.post("/cgi-bin/kf/send_msg", tok, menu), 40058)
	menu["msgmenu"].(map[string]any)["list"] = items[:10]
	h.expect(h.post("/cgi-bin/kf/send_msg", tok, menu), 0)
	if in := h.api.Inbox("wmD"); len(in[0].Menu) != 10 {
		t.Fatalf("menu inbox %+v", in)
	}
	// State 2/3 forbid send_msg.
	h.expect(h.post("/cgi-bin/kf/service_state/trans", tok, map[string]any{"open_kfid": tKF, "external_userid": "wmD", "service_state": 2}), 0)
	h.expect(h.post("/cgi-bin/kf/send_msg", tok, kfText("wmD", "x")), ErrKFStateForbidsSend)
}

func trans(h *harness, tok, user string, state int, servicer string) map[string]any {
	body := map[string]any{"open_kfid": tKF, "external_userid": user, "service_state": state}
	if servicer != "" {
		body["servicer_userid"] = servicer
	}
	return h.post("/cgi-bin/kf/service_state/trans", tok, body)
}

func TestKFStateMachine(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.weComToken(tKFSecret)
	get := func(user string) (int, string) {
		m := h.expect(h.post("/cgi-bin/kf/service_state/get", tok, map[string]any{"open_kfid": tKF, "external_userid": user}), 0)
		return int(m["service_state"].(float64)), m["servicer_userid"].(string)
	}
	if st, _ := get("wmX"); st != KFStateEnded {
		t.Fatalf("untouched session state %d, want 4", st)
	}
	h.expect(trans(h, tok, "wmX", 1, ""), ErrKFBadTransition) // 4 → anything
	_, _, _ = h.api.KFCustomerSends(tKF, "wmX", "hi")
	h.expect(trans(h, tok, "wmX", 1, ""), 0)
	if _, ok := h.expect(trans(h, tok, "wmX", 1, ""), 0)["msg_code"]; ok {
		t.Fatal("1 → 1 returned a msg_code")
	}
	q := h.expect(trans(h, tok, "wmX", 2, ""), 0)
	if q["msg_code"] == nil {
		t.Fatal("first change to 2 returned no msg_code")
	}
	h.expect(trans(h, tok, "wmX", 1, ""), ErrKFBadTransition) // 2 → 1 not allowed
	h.expect(trans(h, tok, "wmX", 3, ""), ErrKFInvalidServicer)
	h.expect(trans(h, tok, "wmX", 3, "stranger"), ErrKFInvalidServicer)
	h.api.SetServicerStatus(tCorpID, "agent2", 1)
	h.expect(trans(h, tok, "wmX", 3, "agent2"), ErrKFInvalidServicer) // 停止接待
	s := h.expect(trans(h, tok, "wmX", 3, "agent1"), 0)
	if s["msg_code"] == nil {
		t.Fatal("first change to 3 returned no msg_code")
	}
	if st, who := get("wmX"); st != 3 || who != "agent1" {
		t.Fatalf("state %d %s", st, who)
	}
	h.api.SetServicerStatus(tCorpID, "agent2", 0)
	if _, ok := h.expect(trans(h, tok, "wmX", 3, "agent2"), 0)["msg_code"]; ok {
		t.Fatal("3 → 3 transfer returned a msg_code")
	}
	h.expect(trans(h, tok, "wmX", 2, ""), ErrKFBadTransition) // 3 → 2
	h.expect(trans(h, tok, "wmX", 1, ""), ErrKFBadTransition) // 3 → 1
	e := h.expect(trans(h, tok, "wmX", 4, ""), 0)
	if e["msg_code"] == nil {
		t.Fatal("ending returned no msg_code")
	}
	h.expect(trans(h, tok, "wmX", 0, ""), ErrKFBadTransition)
	// The customer writes again → 0; the next 2 is a "first" change again.
	_, _, _ = h.api.KFCustomerSends(tKF, "wmX", "me again")
	if st, _ := get("wmX"); st != KFStateUntreated {
		t.Fatalf("state %d", st)
	}
	if h.expect(trans(h, tok, "wmX", 2, ""), 0)["msg_code"] == nil {
		t.Fatal("new session: first change to 2 returned no code")
	}
	h.expect(trans(h, tok, "wmX", 9, ""), ErrKFBadTransition)
	h.expect(h.post("/cgi-bin/kf/service_state/trans", tok, map[string]any{"open_kfid": tKF, "external_userid": "wmX"}), 40058)
	// Agent replies from the WeCom client into an ended session → 3.
	h.expect(trans(h, tok, "wmX", 4, ""), 0)
	if _, err := h.api.KFAgentSends(tKF, "wmX", "agent1", "我来跟进"); err != nil {
		t.Fatal(err)
	}
	if st, who := get("wmX"); st != 3 || who != "agent1" {
		t.Fatalf("after agent message: %d %s", st, who)
	}
	msgs := h.api.KFMessages(tKF)
	if last := msgs[len(msgs)-1]; last.Origin != KFOriginServicer || last.ServicerUserID != "agent1" {
		t.Fatalf("agent message %+v", last)
	}
}

func onEvent(code, msgtype string) map[string]any {
	b := map[string]any{"code": code, "msgtype": msgtype}
	switch msgtype {
	case "text":
		b["text"] = map[string]any{"content": "感谢您的咨询"}
	case "msgmenu":
		b["msgmenu"] = map[string]any{"head_content": "请评价", "list": []any{
			map[string]any{"type": "click", "click": map[string]any{"id": "csat_5", "content": "满意"}},
			map[string]any{"type": "click", "click": map[string]any{"id": "csat_1", "content": "不满意"}},
		}}
	}
	return b
}

func TestKFSendMsgOnEvent(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.weComToken(tKFSecret)
	_, _, _ = h.api.KFCustomerSends(tKF, "wmS", "hi")
	end := h.expect(trans(h, tok, "wmS", 4, ""), 0)["msg_code"].(string)
	h.expect(h.post("/cgi-bin/kf/send_msg_on_event", tok, onEvent(end, "msgmenu")), 0)
	h.expect(h.post("/cgi-bin/kf/send_msg_on_event", tok, onEvent(end, "text")), ErrKFInvalidMsgCode) // single use
	if in := h.api.Inbox("wmS"); len(in) != 1 || in[0].Channel != "kf_event" || len(in[0].Menu) != 2 {
		t.Fatalf("inbox %+v", in)
	}
	// 20 s validity.
	_, _, _ = h.api.KFCustomerSends(tKF, "wmS", "again")
	end = h.expect(trans(h, tok, "wmS", 4, ""), 0)["msg_code"].(string)
	h.api.Advance(21 * time.Second)
	h.expect(h.post("/cgi-bin/kf/send_msg_on_event", tok, onEvent(end, "text")), ErrKFInvalidMsgCode)
	// State must still match: the customer wrote in between.
	_, _, _ = h.api.KFCustomerSends(tKF, "wmS", "wait")
	end = h.expect(trans(h, tok, "wmS", 4, ""), 0)["msg_code"].(string)
	_, _, _ = h.api.KFCustomerSends(tKF, "wmS", "one more thing")
	h.expect(h.post("/cgi-bin/kf/send_msg_on_event", tok, onEvent(end, "text")), ErrKFInvalidMsgCode)
	// Queue code: 48 h, text only, only while queued.
	queue := h.expect(trans(h, tok, "wmS", 2, ""), 0)["msg_code"].(string)
	h.expect(h.post("/cgi-bin/kf/send_msg_on_event", tok, onEvent(queue, "msgmenu")), 40008)
	h.api.Advance(47 * time.Hour)
	tok = h.weComToken(tKFSecret)
	h.expect(h.post("/cgi-bin/kf/send_msg_on_event", tok, onEvent(queue, "text")), 0)
	// Agent ends the session in the client: event with a 20 s msg_code.
	h.expect(trans(h, tok, "wmS", 3, "agent1"), 0)
	_, code, err := h.api.KFAgentEndsSession(tKF, "wmS")
	if err != nil {
		t.Fatal(err)
	}
	if ev := lastEvent(t, h.api, "session_status_change"); ev.ChangeType != 3 || ev.MsgCode != code || ev.OldServicerUserID != "agent1" {
		t.Fatalf("event %+v", ev)
	}
	h.expect(h.post("/cgi-bin/kf/send_msg_on_event", tok, onEvent(code, "msgmenu")), 0)
	// Welcome code from enter_session: 20 s, only without a message in 48 h.
	_, welcome, _ := h.api.KFCustomerEnters(tKF, "wmNew", "store42", "from_qr")
	if welcome == "" {
		t.Fatal("no welcome_code for a new customer")
	}
	if ev := lastEvent(t, h.api, "enter_session"); ev.Scene != "store42" || ev.WelcomeCode != welcome {
		t.Fatalf("enter_session %+v", ev)
	}
	h.expect(h.post("/cgi-bin/kf/send_msg_on_event", tok, onEvent(welcome, "text")), 0)
	_, _, _ = h.api.KFCustomerSends(tKF, "wmNew", "hi")
	if _, again, _ := h.api.KFCustomerEnters(tKF, "wmNew", "store42", ""); again != "" {
		t.Fatal("welcome_code issued despite a recent message")
	}
	h.expect(h.post("/cgi-bin/kf/send_msg_on_event", tok, onEvent("CODE_FORGED", "text")), ErrKFInvalidMsgCode)
}
