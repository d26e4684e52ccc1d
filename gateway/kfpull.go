package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// KF pulling (WECHAT.md §4.2, §7.3): the callback only signals; a puller
// takes a per-account lease (one puller per open_kfid across instances),
// loads the durable cursor, calls sync_msg until has_more is 0 and saves
// the cursor after each page. Messages are deduped by msgid, so re-reading
// a page after a crash answers nothing twice.
const (
	kfPullLease   = 2 * time.Minute
	kfAccountsKey = "kf:accounts"
	kfSafetyPoll  = time.Minute
	kfPageLimit   = 1000
)

func (g *Gateway) kfWake() {
	if g.Sender != nil {
		select {
		case g.kfNudge <- struct{}{}:
		default:
		}
	}
}

// RunKFPuller processes KF sync jobs until ctx ends, and once a minute
// polls every known KF account in case a callback was lost.
func (g *Gateway) RunKFPuller(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	lastPoll := g.now()
	for {
		for g.PullKFOnce(ctx) > 0 {
		}
		if g.now().Sub(lastPoll) > kfSafetyPoll {
			g.enqueueSafetyPolls(ctx)
			lastPoll = g.now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-g.kfNudge:
		}
	}
}

func (g *Gateway) enqueueSafetyPolls(ctx context.Context) {
	accounts, err := g.eng.HGetAll(ctx, kfAccountsKey)
	if err != nil {
		return
	}
	for id, chName := range accounts {
		data, _ := json.Marshal(kfSyncJob{Channel: string(chName), OpenKfID: id, At: g.now().Unix()})
		_ = g.eng.Enqueue(ctx, kfQueue, engine.Job{ID: string(chName) + ":" + id + ":poll", Data: data, Due: g.now()})
	}
}

// PullKFOnce handles one batch of due KF sync jobs; it returns how many.
func (g *Gateway) PullKFOnce(ctx context.Context) int {
	jobs, err := g.eng.Claim(ctx, kfQueue, g.now(), kfPullLease, 8)
	if err != nil {
		g.log.Warn("kf claim failed", "err", err)
		return 0
	}
	for _, j := range jobs {
		var job kfSyncJob
		if err := json.Unmarshal(j.Data, &job); err != nil {
			_ = g.eng.Ack(ctx, kfQueue, j.ID)
			continue
		}
		ch, ok := g.byName[job.Channel]
		if !ok || ch.cfg.Type != conv.ChannelWeComKF {
			g.log.Error("kf job for an unknown channel; dropping", "channel", job.Channel)
			_ = g.eng.Ack(ctx, kfQueue, j.ID)
			continue
		}
		err := g.pullKF(ctx, ch, job)
		switch {
		case err == nil:
			// Only the job as claimed: a callback that arrived during the
			// pull re-enqueued the account's job (same ID, due now) for
			// messages the pull may have missed, and a plain Ack deleted
			// it, leaving them to the safety poll a minute later.
			_, _ = g.eng.AckClaimed(ctx, kfQueue, j)
		case errors.Is(err, errKFBusy):
			// Another instance is pulling this account; try again shortly.
			_ = g.eng.Enqueue(ctx, kfQueue, engine.Job{ID: j.ID, Data: j.Data, Due: g.now().Add(time.Second)})
		default:
			g.log.Warn("kf pull failed; will retry", "open_kfid", job.OpenKfID, "err", err)
			// The token of a callback lives 10 minutes; after that pull
			// without it (stricter rate limit, but nothing is lost).
			if g.now().Unix()-job.At > 540 {
				job.Token = ""
			}
			data, _ := json.Marshal(job)
			_ = g.eng.Enqueue(ctx, kfQueue, engine.Job{ID: j.ID, Data: data, Due: g.now().Add(g.Sender.backoff(j.Attempts, nil)), Attempts: j.Attempts})
		}
	}
	return len(jobs)
}

var errKFBusy = errors.New("kf account is being pulled by another worker")

// kfSyncResp is the sync_msg answer.
type kfSyncResp struct {
	NextCursor string           `json:"next_cursor"`
	HasMore    int              `json:"has_more"`
	MsgList    []map[string]any `json:"msg_list"`
}

func (g *Gateway) pullKF(ctx context.Context, ch *channel, job kfSyncJob) error {
	lease := "kf:lease:" + ch.cfg.AppID + ":" + job.OpenKfID
	owner := g.newOwner()
	ok, err := g.eng.SetNX(ctx, lease, []byte(owner), kfPullLease)
	if err != nil {
		return err
	}
	if !ok {
		return errKFBusy
	}
	defer func() { _, _ = g.eng.CompareAndDelete(context.Background(), lease, []byte(owner)) }()
	_ = g.eng.HSet(ctx, kfAccountsKey, map[string][]byte{job.OpenKfID: []byte(ch.cfg.Name)})
	cursorKey := "kf:cursor:" + ch.cfg.AppID + ":" + job.OpenKfID
	cursor := ""
	if b, err := g.eng.Get(ctx, cursorKey); err == nil {
		cursor = string(b)
	} else if !errors.Is(err, engine.ErrNotFound) {
		return err
	}
	for page := 0; page < 1000; page++ {
		req := map[string]any{"cursor": cursor, "limit": kfPageLimit, "open_kfid": job.OpenKfID, "voice_format": 0}
		if job.Token != "" {
			req["token"] = job.Token
		}
		var resp kfSyncResp
		if err := g.Sender.api.call(ctx, kfApp(ch), g.cfg.WeComAPIBase, "/cgi-bin/kf/sync_msg", req, &resp); err != nil {
			return err
		}
		for _, raw := range resp.MsgList {
			msg, ok := kfMessage(ch, raw, g.now())
			if !ok {
				continue
			}
			g.kfSideEffects(ctx, msg)
			// Accepted and answered in order, one message at a time.
			if err := g.acceptInline(ctx, msg); err != nil {
				return err
			}
		}
		// The cursor moves only after the page's messages are durably
		// accepted; a crash re-reads the page and dedupe absorbs it.
		if resp.NextCursor != "" && resp.NextCursor != cursor {
			cursor = resp.NextCursor
			if err := g.eng.Set(ctx, cursorKey, []byte(cursor), 0); err != nil {
				return err
			}
		}
		// has_more may be 1 with an empty list: keep pulling (WECHAT.md §4.2).
		if resp.HasMore != 1 {
			return nil
		}
		// A long backlog must not outlive the lease: renew it per page.
		if ok, err := g.eng.CompareAndSwap(ctx, lease, []byte(owner), []byte(owner), kfPullLease); err != nil || !ok {
			return fmt.Errorf("lost the pull lease of %s", job.OpenKfID)
		}
	}
	return fmt.Errorf("sync_msg still has_more after 1000 pages")
}

// kfSideEffects updates the quota book from KF events before routing them.
func (g *Gateway) kfSideEffects(ctx context.Context, msg conv.Message) {
	if msg.Event == "msg_send_fail" && msg.Extra["fail_type"] == "6" {
		g.Sender.exhaustQuota(ctx, msg.Channel, msg.ExternalUser)
	}
}

// acceptInline accepts and processes a message synchronously (no passive
// reply): used by the KF puller to keep a customer's messages in order.
func (g *Gateway) acceptInline(ctx context.Context, msg conv.Message) error {
	c, ok, _, err := g.claim(ctx, msg, g.ttlFor(msg), true)
	if err != nil {
		return err
	}
	if !ok {
		g.metrics.dedupeHits.WithLabelValues(msg.Channel).Inc()
		return nil
	}
	g.metrics.requests.WithLabelValues(msg.Channel, "kf_accepted").Inc()
	g.work.Add(1)
	defer g.work.Done()
	g.process(msg, c)
	return nil
}

// kfMessage maps one sync_msg entry to a conv.Message.
func kfMessage(ch *channel, raw map[string]any, now time.Time) (conv.Message, bool) {
	str := func(m map[string]any, k string) string {
		switch v := m[k].(type) {
		case string:
			return v
		case float64:
			return strconv.FormatInt(int64(v), 10)
		}
		return ""
	}
	msgID := str(raw, "msgid")
	if msgID == "" {
		return conv.Message{}, false
	}
	origin, _ := strconv.Atoi(str(raw, "origin"))
	sendTime, _ := strconv.ParseInt(str(raw, "send_time"), 10, 64)
	kfid := str(raw, "open_kfid")
	user := str(raw, "external_userid")
	msgType := str(raw, "msgtype")
	m := conv.Message{
		ID:           "kf:" + ch.cfg.AppID + ":m:" + msgID,
		Channel:      ch.cfg.Name,
		ChannelType:  conv.ChannelWeComKF,
		Account:      kfid,
		ExternalUser: user,
		Store:        ch.cfg.Store,
		RawType:      msgType,
		PlatformID:   msgID,
		Origin:       origin,
		ServicerID:   str(raw, "servicer_userid"),
		CreatedAt:    time.Unix(sendTime, 0),
		ReceivedAt:   now,
	}
	if st, ok := ch.cfg.Scenes[kfid]; ok {
		m.Store = st
	}
	sub, _ := raw[msgType].(map[string]any)
	switch msgType {
	case "text":
		m.Kind, m.Text, m.MenuID = conv.MsgText, str(sub, "content"), str(sub, "menu_id")
	case "image":
		m.Kind, m.MediaID = conv.MsgImage, str(sub, "media_id")
	case "voice":
		m.Kind, m.MediaID = conv.MsgVoice, str(sub, "media_id")
	case "video":
		m.Kind, m.MediaID = conv.MsgVideo, str(sub, "media_id")
	case "file":
		m.Kind, m.MediaID = conv.MsgFile, str(sub, "media_id")
	case "location":
		m.Kind, m.Label = conv.MsgLocation, str(sub, "name")
		m.Latitude, _ = sub["latitude"].(float64)
		m.Longitude, _ = sub["longitude"].(float64)
	case "link":
		m.Kind, m.Title, m.Description, m.URL = conv.MsgLink, str(sub, "title"), str(sub, "desc"), str(sub, "url")
	case "event":
		m.Kind, m.Event = conv.MsgEvent, str(sub, "event_type")
		if user == "" {
			m.ExternalUser = str(sub, "external_userid")
		}
		if kfid == "" {
			m.Account = str(sub, "open_kfid")
		}
		m.Extra = map[string]string{}
		for _, k := range []string{"scene", "scene_param", "welcome_code", "fail_msgid", "fail_type", "change_type", "msg_code", "old_servicer_userid", "new_servicer_userid", "recall_msgid"} {
			if v := str(sub, k); v != "" {
				m.Extra[k] = v
			}
		}
		// The codes gate send_msg_on_event (welcome, end-of-session survey slot).
		if c := m.Extra["welcome_code"]; c != "" {
			m.Code = c
		}
		if c := m.Extra["msg_code"]; c != "" {
			m.Code = c
		}
	default:
		m.Kind = conv.MsgUnknown
		m.Raw, _ = json.Marshal(raw)
	}
	m.Customer = conv.NewCustomerID(ch.cfg.Name, m.ExternalUser)
	return m, true
}
