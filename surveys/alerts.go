package surveys

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Markdown size limits of a batched post (robot 4096, WeCom app 2048 bytes).
const (
	robotMaxBytes = 4000
	appMaxBytes   = 2000
)

// alertDue sends a newly opened case's alert to its store's managers.
func (s *Service) alertDue(ctx context.Context, id string, _ engine.Job) error {
	c, err := s.LoadCase(ctx, id)
	if errors.Is(err, conv.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.alert(ctx, c, "open", c.Store, false); err != nil {
		return err
	}
	_, err = s.updateCase(ctx, id, func(cc *Case) error {
		if !cc.AlertedAt.IsZero() {
			return errNoChange
		}
		cc.AlertedAt = s.now()
		cc.History = append(cc.History, CaseEvent{At: cc.AlertedAt, Actor: "system", Action: "alerted"})
		return nil
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}

// managersFor returns the managers responsible for node: its own, or the
// nearest ancestor's when the node has none, or HQ's for a store missing
// from the tree (someone must hear of every detractor).
func (s *Service) managersFor(node conv.StoreID) []conv.Manager {
	chain := append([]conv.StoreID{node}, s.tree.Ancestors(node)...)
	if _, known := s.tree.Node(node); !known && s.cfg.Stores.ID != "" {
		chain = append(chain, s.cfg.Stores.ID)
	}
	for _, id := range chain {
		if n, ok := s.tree.Node(id); ok && len(n.Managers) > 0 {
			return n.Managers
		}
	}
	return nil
}

// alert sends one alert of kind ("open", "rem0", "esc1", "when",
// "comment") about c to the managers of node on every configured route.
// Alert IDs derive from case, kind and recipient and each is queued or
// sent once, so a timer fired twice alerts once.
func (s *Service) alert(ctx context.Context, c Case, kind string, node conv.StoreID, escalation bool) error {
	managers := s.managersFor(node)
	if len(managers) == 0 {
		s.log.Warn("no manager to alert", "case", c.ID, "store", node)
		s.noteCase(ctx, c.ID, "system", "alert_failed", "no manager configured for "+string(node))
		return nil
	}
	title := s.alertTitle(c, kind, escalation)
	for i, m := range managers {
		base := fmt.Sprintf("alert:%s:%s", c.ID, kind)
		who := m.Login
		if who == "" {
			who = m.WeComUserID
		}
		if who == "" {
			who = m.Name
		}
		claim := s.ClaimURL(c.ID, who)
		body := s.alertMarkdown(c, title, claim)
		line := s.robotLine(c, title, claim)
		if m.WeComUserID != "" && s.cfg.Alerts.WeComAppChannel != "" {
			t := batchTarget{Kind: conv.OutWeComApp, Channel: s.cfg.Alerts.WeComAppChannel, To: m.WeComUserID}
			if err := s.queueBatch(ctx, t, base+":w:"+m.WeComUserID, body, line); err != nil {
				return err
			}
		}
		if m.OpenID != "" && s.cfg.Alerts.TemplateChannel != "" {
			err := s.sender.Send(ctx, conv.Outbound{ID: base + ":t:" + m.OpenID, Kind: conv.OutTemplate, Channel: s.cfg.Alerts.TemplateChannel,
				To: m.OpenID, Source: "alert", Template: &conv.Template{TemplateID: s.cfg.Alerts.TemplateID, URL: claim, Data: map[string]string{
					"first": title, "keyword1": s.storeName(c.Store), "keyword2": strconv.Itoa(c.Score) + "分", "keyword3": clip(c.Comment, 60),
					"keyword4": c.OpenedAt.In(s.loc).Format("01-02 15:04"), "remark": "请在" + c.Deadline.In(s.loc).Format("01-02 15:04") + "前回访，点击认领"}}})
			if errors.Is(err, conv.ErrBadInput) {
				// Misconfigured (e.g. unknown channel): retrying cannot help,
				// and the other routes must still go out.
				s.noteCase(ctx, c.ID, "system", "alert_failed", "template: "+err.Error())
			} else if err != nil {
				return err
			}
		}
		if m.RobotKey != "" && s.cfg.Alerts.Robot {
			t := batchTarget{Kind: conv.OutRobot, To: m.RobotKey}
			if err := s.queueBatch(ctx, t, base+":r:"+shortHash(m.RobotKey), line, line); err != nil {
				return err
			}
		}
		if m.Webhook != "" && s.cfg.Alerts.WebhookSecret != "" {
			d := webhookDelivery{ID: fmt.Sprintf("%s:h:%d", base, i), URL: m.Webhook, Payload: s.webhookPayload(c, kind, m, claim)}
			if err := s.enqueue(ctx, "hook:"+d.ID, s.now(), d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Service) storeName(id conv.StoreID) string {
	if n, ok := s.tree.Node(id); ok && n.Name != "" {
		return n.Name
	}
	return string(id)
}

func (s *Service) alertTitle(c Case, kind string, escalation bool) string {
	switch {
	case escalation:
		return "【差评升级】" + s.storeName(c.Store) + " 的差评已超时未处理"
	case kind == "comment":
		return "【差评补充】" + s.storeName(c.Store) + " 客户留言：" + clip(c.Comment, 60)
	case kind == "when":
		return "【差评补充】" + s.storeName(c.Store) + " 客户方便回访时间：" + clip(c.PreferredTime, 40)
	case strings.HasPrefix(kind, "rem"):
		return "【差评提醒】请尽快回访 " + s.storeName(c.Store) + " 的不满意客户"
	}
	return "【差评预警】" + s.storeName(c.Store) + " 收到 " + strconv.Itoa(c.Score) + " 分评价"
}

// alertMarkdown is the WeCom app / robot body: score, comment, store,
// agent, transcript and claim links, deadline.
func (s *Service) alertMarkdown(c Case, title, claim string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n", title)
	fmt.Fprintf(&b, "> 评分：<font color=\"warning\">%d</font> 分（0–10）\n", c.Score)
	comment := c.Comment
	if comment == "" {
		comment = "（客户未留言）"
	}
	fmt.Fprintf(&b, "> 评价：%s\n", clip(comment, 300))
	if c.PreferredTime != "" {
		fmt.Fprintf(&b, "> 方便回访：%s\n", clip(c.PreferredTime, 100))
	}
	fmt.Fprintf(&b, "> 门店：%s\n", s.storeName(c.Store))
	agent := c.Agent
	if agent == "" {
		agent = "机器人（未转人工）"
	}
	fmt.Fprintf(&b, "> 客服：%s · 渠道：%s\n", agent, c.Channel)
	fmt.Fprintf(&b, "> 回访截止：%s\n", c.Deadline.In(s.loc).Format("01-02 15:04"))
	if t := s.TranscriptURL(c); t != "" {
		fmt.Fprintf(&b, "[查看对话](%s)  ", t)
	}
	if claim != "" {
		fmt.Fprintf(&b, "[一键认领](%s)", claim)
	}
	return b.String()
}

// robotLine is one alert as a line of a batched post (robots always,
// WeCom app messages when several are pending).
func (s *Service) robotLine(c Case, title, claim string) string {
	comment := c.Comment
	if comment == "" {
		comment = "（未留言）"
	}
	line := fmt.Sprintf("**%s**\n> %d分 · %s · 客服 %s\n> %s", title, c.Score, s.storeName(c.Store), orDash(c.Agent), clip(comment, 120))
	if c.PreferredTime != "" {
		line += "\n> 方便回访：" + clip(c.PreferredTime, 40)
	}
	if claim != "" {
		line += fmt.Sprintf("\n[认领](%s)", claim)
	}
	return line
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// TranscriptURL links the case's conversation in the console ("" without
// alerts.console_url).
func (s *Service) TranscriptURL(c Case) string {
	if s.cfg.Alerts.ConsoleURL == "" || c.Conv == "" {
		return ""
	}
	return strings.TrimRight(s.cfg.Alerts.ConsoleURL, "/") + "/console/conversations/" + url.PathEscape(string(c.Conv))
}

// ClaimURL is the one-tap claim link for manager who: a GET on the
// manager handler's /surveys/claim, signed so it needs no login.
func (s *Service) ClaimURL(caseID, who string) string {
	if s.cfg.Alerts.ConsoleURL == "" {
		return ""
	}
	exp := strconv.FormatInt(s.now().Add(s.cfg.Alerts.ClaimTTL).Unix(), 10)
	q := url.Values{"case": {caseID}, "who": {who}, "exp": {exp}, "sig": {s.claimSig(caseID, who, exp)}}
	return strings.TrimRight(s.cfg.Alerts.ConsoleURL, "/") + "/surveys/claim?" + q.Encode()
}

func (s *Service) claimSig(caseID, who, exp string) string {
	m := hmac.New(sha256.New, []byte(s.cfg.Alerts.ClaimSecret))
	m.Write([]byte(caseID + "\n" + who + "\n" + exp))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyClaim checks a claim link's parameters.
func (s *Service) VerifyClaim(caseID, who, exp, sig string) error {
	if s.cfg.Alerts.ClaimSecret == "" {
		return fmt.Errorf("%w: claim links are not configured", conv.ErrForbidden)
	}
	if !hmac.Equal([]byte(sig), []byte(s.claimSig(caseID, who, exp))) {
		return fmt.Errorf("%w: bad claim signature", conv.ErrForbidden)
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || s.now().Unix() > e {
		return fmt.Errorf("%w: claim link expired", conv.ErrForbidden)
	}
	return nil
}

// shortSuffix names the batch-line version of a queued alert's text.
const shortSuffix = "\x00s"

// batchTarget is one recipient whose alerts are coalesced: a group robot
// (≤20 posts a minute) or a WeCom member (≤30 app messages a minute, the
// excess silently dropped by WeCom, WECHAT.md §3.2–3.3).
type batchTarget struct {
	Kind    conv.OutboundKind `json:"kind"`
	Channel string            `json:"channel,omitempty"`
	To      string            `json:"to"`
}

func (b batchTarget) hash() string {
	return shortHash(string(b.Kind) + "\x00" + b.Channel + "\x00" + b.To)
}

// maxBytes keeps a post under the platform's markdown limit (robot 4096,
// WeCom app 2048 bytes).
func (b batchTarget) maxBytes() int {
	if b.Kind == conv.OutRobot {
		return robotMaxBytes
	}
	return appMaxBytes
}

// queueBatch adds alert text id to target's pending batch and arms its
// flush timer. Each id is queued once ever (a re-run alert timer would
// otherwise post it again after its batch went out); its text is kept
// beside the pending set so a re-run overwrites rather than duplicates.
//
// full is the alert as sent alone; short is its line in a batch of several,
// so a storm still fits the platform's per-minute limits.
func (s *Service) queueBatch(ctx context.Context, target batchTarget, id, full, short string) error {
	first, err := s.eng.SetNX(ctx, keyAlertQueued+id, []byte("1"), 7*24*time.Hour)
	if err != nil || !first {
		return err
	}
	h := target.hash()
	if err := s.eng.HSet(ctx, keyBatchText+h, map[string][]byte{id: []byte(full), id + shortSuffix: []byte(short)}); err != nil {
		return err
	}
	if err := s.eng.ZAdd(ctx, keyBatchQ+h, engine.ZItem{Member: id, Score: float64(s.now().UnixMilli())}); err != nil {
		return err
	}
	return s.enqueue(ctx, "batch:"+h, s.now(), target)
}

// batchDue posts a target's pending alerts: at once when it has not posted
// within BatchEvery, else at the end of that gap, all pending ones
// together (split only by size). It retires its own timer (ackBatch), so
// it never asks RunDue to ack.
func (s *Service) batchDue(ctx context.Context, h string, j engine.Job) (bool, error) {
	var target batchTarget
	if err := json.Unmarshal(j.Data, &target); err != nil || target.To == "" {
		return true, nil
	}
	if s.cfg.Alerts.RobotBatchEvery > 0 {
		ok, err := s.tryLock(ctx, keyBatchLock+h, s.cfg.Alerts.RobotBatchEvery)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, s.enqueue(ctx, j.ID, s.now().Add(s.cfg.Alerts.RobotBatchEvery), target)
		}
	}
	items, err := s.eng.ZRangeByScore(ctx, keyBatchQ+h, 0, 1e18, 50)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return false, err
	}
	if len(items) == 0 {
		return false, s.ackBatch(ctx, h, j.ID, target)
	}
	texts, err := s.eng.HGetAll(ctx, keyBatchText+h)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return false, err
	}
	var ids, parts, fields []string
	size := 0
	for _, it := range items {
		text := string(texts[it.Member])
		if len(items) > 1 {
			text = string(texts[it.Member+shortSuffix])
		}
		if size+len(text) > target.maxBytes()-64 && len(parts) > 0 {
			break
		}
		ids, parts, fields = append(ids, it.Member), append(parts, text), append(fields, it.Member, it.Member+shortSuffix)
		size += len(text) + 2
	}
	body := strings.Join(parts, "\n\n")
	if len(parts) > 1 {
		body = fmt.Sprintf("**%d 条差评提醒**\n\n", len(parts)) + body
	}
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	// The ID derives from the batch's content, so two instances flushing the
	// same batch send it once.
	out := conv.Outbound{ID: "batch:" + h + ":" + shortHash(strings.Join(sorted, ",")), Kind: target.Kind, Channel: target.Channel, To: target.To,
		Reply: conv.Reply{Kind: conv.ReplyMarkdown, Text: body}, Source: "alert"}
	if err := s.sender.Send(ctx, out); errors.Is(err, conv.ErrBadInput) {
		// Misconfigured (an unknown wecom_app channel): drop loudly rather
		// than retry forever; the cases keep their history.
		s.log.Error("alert batch refused by the sender; dropped", "kind", target.Kind, "channel", target.Channel, "alerts", len(ids), "err", err)
	} else if err != nil {
		return false, err
	}
	if _, err := s.eng.ZRem(ctx, keyBatchQ+h, ids...); err != nil {
		return false, err
	}
	_ = s.eng.HDel(ctx, keyBatchText+h, fields...)
	if len(items) > len(parts) {
		return false, s.enqueue(ctx, j.ID, s.now().Add(s.cfg.Alerts.RobotBatchEvery), target)
	}
	return false, s.ackBatch(ctx, h, j.ID, target)
}

// ackBatch retires a target's flush timer, then looks at its pending set
// once more. The order matters: an alert queued while this flush ran
// re-armed this very timer (same ID), so an ack after that would delete
// its only wake-up and leave it pending until the target's next alert.
// Acking first and then re-arming when anything is pending loses nothing:
// an alert added after the look arms its own timer, after the ack.
func (s *Service) ackBatch(ctx context.Context, h, timerID string, target batchTarget) error {
	if err := s.eng.Ack(ctx, queueTimers, timerID); err != nil {
		return err
	}
	left, err := s.eng.ZRangeByScore(ctx, keyBatchQ+h, 0, 1e18, 1)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return err
	}
	if len(left) == 0 {
		return nil
	}
	return s.enqueue(ctx, timerID, s.now().Add(s.cfg.Alerts.RobotBatchEvery), target)
}

// webhookDelivery is one generic webhook post, retried by its timer.
type webhookDelivery struct {
	ID      string          `json:"id"`
	URL     string          `json:"url"`
	Payload json.RawMessage `json:"payload"`
}

// WebhookAlert is the JSON body of a generic webhook alert. Receivers
// verify X-Kefu-Signature = hex(HMAC-SHA256(secret, timestamp + "." + body))
// with X-Kefu-Timestamp, and dedupe on X-Kefu-Delivery.
type WebhookAlert struct {
	Kind      string       `json:"kind"` // open, rem0…, esc1…
	Case      string       `json:"case"`
	Store     conv.StoreID `json:"store"`
	StoreName string       `json:"store_name"`
	Recipient string       `json:"recipient"`
	Score     int          `json:"score"`
	Comment   string       `json:"comment,omitempty"`
	// PreferredTime is the customer's call-back time, when given.
	PreferredTime string    `json:"preferred_time,omitempty"`
	Agent         string    `json:"agent,omitempty"`
	Channel       string    `json:"channel"`
	Deadline      time.Time `json:"deadline"`
	Transcript    string    `json:"transcript_url,omitempty"`
	Claim         string    `json:"claim_url,omitempty"`
}

func (s *Service) webhookPayload(c Case, kind string, m conv.Manager, claim string) json.RawMessage {
	b, _ := json.Marshal(WebhookAlert{Kind: kind, Case: c.ID, Store: c.Store, StoreName: s.storeName(c.Store), Recipient: m.Name, Score: c.Score,
		Comment: c.Comment, PreferredTime: c.PreferredTime, Agent: c.Agent, Channel: c.Channel, Deadline: c.Deadline, Transcript: s.TranscriptURL(c), Claim: claim})
	return b
}

// SignWebhook returns the signature header value for body sent at ts.
func SignWebhook(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// hookDue posts a webhook, retrying with backoff until WebhookAttempts.
func (s *Service) hookDue(ctx context.Context, j engine.Job) (bool, error) {
	var d webhookDelivery
	if err := json.Unmarshal(j.Data, &d); err != nil {
		return true, nil
	}
	if ok, _ := s.exists(ctx, keyHookDone+d.ID); ok {
		return true, nil
	}
	err := s.postWebhook(ctx, d)
	if err == nil {
		_ = s.eng.Set(ctx, keyHookDone+d.ID, []byte("1"), 7*24*time.Hour)
		return true, nil
	}
	caseID := strings.SplitN(d.ID, ":", 3)[1]
	if j.Attempts >= s.cfg.Alerts.WebhookAttempts {
		s.noteCase(ctx, caseID, "system", "alert_failed", "webhook: "+err.Error())
		return true, nil
	}
	delay := time.Duration(1<<min(j.Attempts, 10)) * time.Second
	s.log.Warn("webhook failed; will retry", "delivery", d.ID, "attempt", j.Attempts, "in", delay, "err", err)
	// Re-enqueue under the same ID: the attempt counter carries over.
	return false, s.eng.Enqueue(ctx, queueTimers, engine.Job{ID: j.ID, Data: j.Data, Due: s.now().Add(delay), Attempts: j.Attempts})
}

func (s *Service) postWebhook(ctx context.Context, d webhookDelivery) error {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kefu-Timestamp", ts)
	req.Header.Set("X-Kefu-Delivery", d.ID)
	req.Header.Set("X-Kefu-Signature", SignWebhook(s.cfg.Alerts.WebhookSecret, ts, d.Payload))
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
